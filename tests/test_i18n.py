"""One catalog for the words a person reads (smsgate/kit/i18n.py, smsgate/locale/): every
message the code marks has its Spanish, and a client that asks for Spanish gets it, with the
same `code` and `field`."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest

from smsgate.kit import i18n

PACKAGE = Path(__file__).resolve().parent.parent / "smsgate"


def _marked() -> dict[str, str]:
    """Every t("...") of the package: its English text, and where it is."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "t"
                and node.args
            ):
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
            first = node.args[0]
            assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                f"{where}: t() takes the English text itself (a literal), for the catalog"
            )
            found.setdefault(first.value, where)
    return found


SAME_IN_BOTH = {
    "webhook",
    "webhooks",
    "token",
    "{account}: plan {plan}",
    "error: {reason}",
    "[SMSGATE_DATABASE_URL]",
}


def _fields_out(words: str) -> str:
    """The text without the API's field names that start a message ("phoneNumber: ...")."""
    return words.split(":", 1)[1] if ":" in words else words


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_marked_message_has_its_spanish_in_the_catalog() -> None:
    spanish, _ = i18n.messages()
    marked = _marked()
    assert len(marked) > 100  # the walk found the code's messages
    missing = [f"{where}: {msgid!r}" for msgid, where in marked.items() if msgid not in spanish]
    assert not missing, "messages without Spanish in smsgate/locale/:\n" + "\n".join(missing)
    for msgid, where in marked.items():
        assert _placeholders(spanish[msgid]) == _placeholders(msgid), f"{where}: {msgid!r}"
        words = "".join(part[0] or "" for part in string.Formatter().parse(msgid))
        if spanish[msgid] == msgid:  # only a word both languages share, or no words at all
            assert msgid in SAME_IN_BOTH or not any(ch.isalpha() for ch in _fields_out(words)), (
                f"{where}: {msgid!r} is not translated"
            )


def test_every_dashboard_word_has_its_spanish() -> None:
    _, named = i18n.messages()
    assert len(named) > 100
    english, spanish = i18n.named_words("en"), i18n.named_words("es")
    assert english.keys() == spanish.keys()
    untranslated = [name for name, (en, es) in named.items() if not es.strip()]
    assert not untranslated


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("es", "es"),
        ("es-MX", "es"),
        ("es-419,es;q=0.9", "es"),
        ("en-US,es;q=0.5", "en"),
        ("fr-FR, es;q=0.3", "es"),
        ("fr", "en"),
        ("", "en"),
        ("es;q=0, en;q=0.1", "en"),
    ],
)
def test_accept_language(header: str, language: str) -> None:
    assert i18n.from_header(header) == language


@pytest.mark.parametrize(
    ("body", "code", "field", "spanish"),
    [
        ({"phoneNumbers": ["12"]}, "invalid_phone_number", "phoneNumbers[0]", "no es un número"),
        ({"message": ""}, "validation_error", "message", "es obligatorio"),
        ({"message": "x" * 1601}, "validation_error", "message", "como máximo 1600 caracteres"),
        ({"colour": "red"}, "validation_error", "colour", "no es un campo conocido"),
        ({"ttl": "soon"}, "validation_error", "ttl", "debe ser un número entero"),
        ({"deviceId": "cnonononononononononononon"}, "not_found", "deviceId", "dispositivo"),
    ],
)
async def test_a_bad_send_answers_in_the_language_asked(
    make_user, body, code, field, spanish
) -> None:
    user = await make_user()
    answers = {}
    for header in ("es-MX", "en"):
        payload = {"phoneNumbers": ["+5215555555555"], "message": "Hola", **body}
        answer = await user.client.post(
            "/api/v1/send", json=payload, headers={**user.auth, "Accept-Language": header}
        )
        assert 400 <= answer.status_code < 500, answer.text
        answers[header] = answer.json()
    es, en = answers["es-MX"], answers["en"]
    assert es["code"] == en["code"] == code
    assert es.get("field") == en.get("field") == field
    assert spanish in es["error"], es
    assert es["error"] != en["error"]


async def test_credentials_and_unknown_paths_answer_in_spanish(client) -> None:
    spanish = {"Accept-Language": "es-419"}
    no_key = await client.post("/api/v1/send", json={}, headers=spanish)
    assert no_key.status_code == 401 and no_key.json()["code"] == "unauthorized"
    assert "credencial" in no_key.json()["error"] or "llave" in no_key.json()["error"]
    nowhere = await client.get("/api/v1/nowhere", headers=spanish)
    assert nowhere.status_code == 404
    assert nowhere.json() == {
        "error": "no existe ese endpoint; la referencia de la API está en /docs",
        "code": "not_found",
    }


async def test_the_third_party_api_says_its_message_in_spanish(make_user) -> None:
    user = await make_user()
    answer = await user.client.post(
        "/api/3rdparty/v1/messages",
        json={"phoneNumbers": ["12"], "textMessage": {"text": "hola"}},
        headers={**user.auth, "Accept-Language": "es-MX"},
    )
    assert answer.status_code == 400, answer.text
    assert "no es un número de teléfono válido" in answer.json()["message"]


async def test_the_cli_speaks_the_environment_language() -> None:
    assert i18n.from_environment({"LANG": "es_MX.UTF-8"}) == "es"
    assert i18n.from_environment({"LC_ALL": "C", "LANG": "es_MX.UTF-8"}) == "en"
    assert i18n.from_environment({}) == "en"
    assert i18n.render(i18n.t("wrong email or password"), "es") == "correo o contraseña incorrectos"
