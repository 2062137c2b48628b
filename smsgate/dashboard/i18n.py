"""The dashboard's words in Spanish (the first customers are in Mexico) and English: the
catalog's named entries (smsgate/kit/i18n.py), and the reader's language."""

from __future__ import annotations

from fastapi import Request

from smsgate.kit import i18n

LANGUAGES = i18n.LANGUAGES
COOKIE = i18n.COOKIE


def language(request: Request) -> str:
    """?lang= wins, then the cookie, then Accept-Language; Spanish by default."""
    return i18n.chosen(
        request.query_params.get("lang"),
        request.cookies.get(COOKIE),
        request.headers.get("accept-language", ""),
        default="es",
    )


class Words:
    """A language's words, read as `t.name` in templates and `t["name"]` in code. Not a dict:
    Jinja looks attributes up first, so `t.copy` or `t.keys` on a dict printed its method
    ("<built-in method copy of dict object ...>") instead of the word."""

    __slots__ = ("_words",)

    def __init__(self, words: dict[str, str]) -> None:
        self._words = words

    def __getattr__(self, name: str) -> str:
        try:
            return self._words[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> str:
        return self._words[name]


_WORDS = {lang: Words(i18n.named_words(lang)) for lang in LANGUAGES}


def translator(lang: str) -> Words:
    return _WORDS.get(lang, _WORDS["en"])
