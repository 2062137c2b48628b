"""Words a person reads, in Spanish and English, from one gettext catalog.

The catalog is `smsgate/locale/es/LC_MESSAGES/messages.po` (read with Babel, no build step):
each message's `msgid` is its English text, with `{name}` placeholders, and its `msgstr` the
Spanish. Code marks a message with `t("English text {name}", name=value)`, which returns a
`Text`: rendered in the reader's language where it is shown (an API error's `error`, a form's
message, the CLI). The dashboard's words are entries with a `msgctxt` (their name in the
templates). tests/test_i18n.py walks the code's `t(...)` calls and fails on a message the
catalog lacks, or one without its Spanish.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

LANGUAGES = ("es", "en")
COOKIE = "smsgate_lang"  # the dashboard's language switch
CATALOG = Path(__file__).resolve().parent.parent / "locale" / "es" / "LC_MESSAGES" / "messages.po"


class Text:
    """A message and its values, rendered when the reader's language is known. A value that is
    itself a Text is rendered in the same language."""

    __slots__ = ("msgid", "params")

    def __init__(self, msgid: str, params: Mapping[str, Any]) -> None:
        self.msgid = msgid
        self.params = params

    def render(self, lang: str) -> str:
        template = translate(self.msgid, lang)
        if not self.params:
            return template
        values = {k: _in(v, lang) for k, v in self.params.items()}
        return template.format(**values)

    def __str__(self) -> str:
        return self.render("en")

    def __repr__(self) -> str:
        return f"Text({self.msgid!r})"

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


def t(msgid: str, /, **params: Any) -> Text:
    """A message of the catalog (its English text) with its values."""
    return Text(msgid, params)


def render(value: Any, lang: str) -> str:
    """A Text in `lang` (or an exception whose message is one); anything else as its text."""
    return str(_in(value, lang))


def _in(value: Any, lang: str) -> Any:
    """A value for a template: a Text rendered, an exception as its (rendered) message, and
    anything else as it is (so that a template's format spec, {size:.1f}, applies)."""
    if isinstance(value, Text):
        return value.render(lang)
    if isinstance(value, BaseException):
        reason = value.args[0] if value.args else ""
        return reason.render(lang) if isinstance(reason, Text) else str(value)
    return value


@functools.cache
def _catalog() -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """(Spanish by English text, (English, Spanish) by context) from the .po file."""
    with CATALOG.open("rb") as handle:
        catalog = read_po(handle, locale="es")
    spanish: dict[str, str] = {}
    named: dict[str, tuple[str, str]] = {}
    for message in catalog:
        if not message.id or not isinstance(message.id, str):
            continue
        text = message.string if isinstance(message.string, str) else ""
        if message.context:
            named[message.context] = (message.id, text or message.id)
        elif text:
            spanish[message.id] = text
    return spanish, named


def translate(msgid: str, lang: str) -> str:
    """The catalog's text of `msgid` in `lang` (English: the msgid itself)."""
    if lang == "es":
        return _catalog()[0].get(msgid, msgid)
    return msgid


def named_words(lang: str) -> dict[str, str]:
    """The dashboard's words (the catalog's entries with a context), by name."""
    index = 1 if lang == "es" else 0
    return {name: pair[index] for name, pair in _catalog()[1].items()}


def messages() -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """The whole catalog (tests)."""
    return _catalog()


def from_header(header: str, default: str = "en") -> str:
    """The language an Accept-Language header prefers among ours ("es-MX, en;q=0.5" -> es),
    by its quality values; `default` when it names neither."""
    best, best_q = default, -1.0
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        code = tag.strip().lower()[:2]
        if code not in LANGUAGES:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > best_q and q > 0:
            best, best_q = code, q
    return best


def chosen(asked: str | None, cookie: str | None, header: str, default: str) -> str:
    """The dashboard's language: ?lang= wins, then its cookie, then Accept-Language."""
    for choice in (asked, cookie):
        if choice in LANGUAGES:
            return str(choice)
    return from_header(header, default)


def from_environment(environ: Mapping[str, str] | None = None) -> str:
    """The CLI's language: LC_ALL, LC_MESSAGES or LANG (es_MX.UTF-8 gives Spanish)."""
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name, "")
        if value:
            return "es" if value.lower().startswith("es") else "en"
    return "en"
