"""ApiError and the one set of handlers that writes every error as {"error", "code"}."""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from smsgate.kit import i18n, logs
from smsgate.kit.i18n import Text, t
from smsgate.kit.responses import JSONResponse

log = logging.getLogger("smsgate.errors")


class ApiError(Exception):
    """An error a client can act on: its message (a catalog Text, or plain text) is shown to
    them in their language (Accept-Language on the API; the dashboard's language there)."""

    def __init__(
        self,
        status: int,
        message: str | Text,
        code: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
        keep_changes: bool = False,
        for_people: Text | None = None,
    ) -> None:
        super().__init__(str(message))
        # the same error told to someone on the dashboard, where an API path means nothing
        self.for_people = for_people
        self.keep_changes = keep_changes
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


UNSTORABLE = "unstorable_text"  # the pydantic error of a body holding NUL or a lone surrogate
# character_not_in_repertoire, untranslatable_character: text PostgreSQL cannot store
_UNSTORABLE = frozenset({"22021", "22P05"})
UNSTORABLE_TEXT = t(
    "a value in the request contains the NUL character (\\u0000), which cannot be stored; remove it"
)


# PostgreSQL's SQLSTATEs of a server that cannot serve now, though the request was fine: any
# connection exception (class 08), shutting down or starting up (57P01-57P03), too many
# connections (53300); 53100 is a full disk
_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03", "53300"})
_DISK_FULL = "53100"
_SQLITE_FULL = 13  # SQLITE_FULL: "database or disk is full"
STORAGE_FULL = t("the server's storage is full; nothing was saved. Retry later")
UNAVAILABLE = t("the database is unavailable; retry shortly")


def storage_is_full(exc: BaseException) -> bool:
    """The error says the database's storage is full (SQLite's SQLITE_FULL, PostgreSQL's
    53100), wherever it was raised: in this process or by the send writer's."""
    orig = getattr(exc, "orig", None) or exc
    state = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    return state == _DISK_FULL or getattr(orig, "sqlite_errorcode", None) == _SQLITE_FULL


def database_fault(exc: BaseException) -> tuple[Text, str] | None:
    """(message, code) when a database error says the server cannot serve now (a 503) rather
    than that the request was wrong; logged by name. None for any other error."""
    orig = getattr(exc, "orig", None) or exc
    state = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    if storage_is_full(exc):
        log.error("storage full: %s", orig)
        return STORAGE_FULL, "storage_full"
    if (
        state in _UNAVAILABLE
        or state.startswith("08")
        or isinstance(exc, OperationalError)
        or getattr(exc, "connection_invalidated", False)
    ):
        log.error("database unavailable: %s", orig)
        return UNAVAILABLE, "service_unavailable"
    return None


def bad_request(
    message: str | Text, code: str = "validation_error", field: str | None = None
) -> ApiError:
    return ApiError(400, message, code, extra={"field": field} if field else None)


# what a 404 names, in the catalog
THINGS = {
    "account": t("account"),
    "api key": t("api key"),
    "API key": t("api key"),
    "token": t("token"),
    "attachment": t("attachment"),
    "campaign": t("campaign"),
    "contact": t("contact"),
    "template": t("template"),
    "conversation": t("conversation"),
    "delivery": t("delivery"),
    "device": t("device"),
    "message": t("message"),
    "webhook": t("webhook"),
    "whatsapp line": t("whatsapp line"),
}


def not_found(what: str, field: str | None = None) -> ApiError:
    """404; `field` names the body's field that referred to it (a send's deviceId)."""
    return ApiError(
        404,
        t("{what} not found", what=THINGS.get(what, what)),
        "not_found",
        extra={"field": field} if field else None,
    )


def error_body(
    message: str | Text, code: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"error": message, "code": code}
    if extra:
        body.update(extra)
    return body


def field_path(loc: Sequence[int | str]) -> str:
    """('body', 'phoneNumbers', 1) -> 'phoneNumbers[1]'."""
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_INTEGER = t("must be an integer")
_BOOLEAN = t("must be true or false")
_OBJECT = t("must be an object")
_DATETIME = t("must be an ISO-8601 date and time such as 2026-01-01T00:00:00Z")
_TYPE_MESSAGES = {
    "missing": t("is required"),
    "extra_forbidden": t("is not a known field"),
    "int_type": _INTEGER,
    "int_parsing": _INTEGER,
    "int_from_float": _INTEGER,
    "bool_type": _BOOLEAN,
    "bool_parsing": _BOOLEAN,
    "string_type": t("must be a string"),
    "list_type": t("must be a list"),
    "dict_type": _OBJECT,
    "model_type": _OBJECT,
    "model_attributes_type": _OBJECT,
    "datetime_parsing": _DATETIME,
    "datetime_type": _DATETIME,
    "datetime_from_date_parsing": _DATETIME,
    "float_type": t("must be a number"),
    "float_parsing": t("must be a number"),
    "url_parsing": t("must be a URL"),
    "url_type": t("must be a URL"),
    "url_scheme": t("must be an http or https URL"),
}
# the kinds whose limit is in the error's context
_BOUNDED = {
    "string_too_long": ("max_length", t("must have at most {limit} characters")),
    "string_too_short": ("min_length", t("must have at least {limit} characters")),
    "too_long": ("max_length", t("must have at most {limit} items")),
    "too_short": ("min_length", t("must have at least {limit} items")),
    "greater_than_equal": ("ge", t("must be greater than or equal to {limit}")),
    "greater_than": ("gt", t("must be greater than {limit}")),
    "less_than_equal": ("le", t("must be less than or equal to {limit}")),
    "less_than": ("lt", t("must be less than {limit}")),
}


def describe_validation_error(err: Mapping[str, Any]) -> tuple[str, str | Text]:
    """One pydantic error as (field, sentence)."""
    loc = tuple(err.get("loc", ()))
    field = field_path(loc)
    kind = str(err.get("type", ""))
    if kind == UNSTORABLE:  # raised for a whole body: its context holds the path within it
        ctx = err.get("ctx") or {}
        inner = str(ctx.get("path", ""))
        joined = (
            f"{field}.{inner}" if field and inner and not inner.startswith("[") else field + inner
        )
        what = ctx.get("what")
        return joined, what if isinstance(what, Text | str) else t("cannot be stored")
    if kind == "json_invalid":
        return "", t("request body is not valid JSON")
    if kind in ("model_attributes_type", "model_type") and not field:
        return "", t("request body must be a JSON object")
    if kind == "missing" and not field:
        return "", t("request body is required")
    known = _TYPE_MESSAGES.get(kind)
    if known is not None:
        return field, known
    ctx = err.get("ctx") or {}
    if kind in _BOUNDED and _BOUNDED[kind][0] in ctx:
        name, message = _BOUNDED[kind]
        return field, Text(message.msgid, {"limit": ctx[name]})
    if kind in ("literal_error", "enum") and "expected" in ctx:
        return field, t("must be one of {expected}", expected=ctx["expected"])
    if kind == "value_error" and isinstance(ctx.get("error"), ValueError):
        reason = ctx["error"].args[0] if ctx["error"].args else None
        if isinstance(reason, Text):
            return field, reason
    # a kind without words of ours: pydantic's English, shaped like ours
    text = str(err.get("msg", "is invalid"))
    if text.startswith("Value error, "):
        text = text[len("Value error, ") :]
    text = text.replace("Input should be", "must be")
    return field, text


def with_field(field: str, text: str | Text) -> Text:
    """A validation error's sentence: "field: what is wrong"."""
    return t("{field}: {reason}", field=field, reason=text)


COMPAT_PREFIX = "/api/3rdparty/"
DASHBOARD_PREFIX = "/dashboard"


def language(request: Request) -> str:
    """The language of a request's words: the dashboard's choice (?lang=, its cookie) on its
    pages; elsewhere Accept-Language (es, es-MX, es-419… give Spanish), English by default."""
    if request.url.path.startswith(DASHBOARD_PREFIX):
        return i18n.chosen(
            request.query_params.get("lang"),
            request.cookies.get(i18n.COOKIE),
            request.headers.get("accept-language", ""),
            default="es",
        )
    return i18n.from_header(request.headers.get("accept-language", ""))


def _answer(
    request: Request, body: dict[str, Any], status: int, headers: Mapping[str, str] | None = None
) -> Response:
    """Our error shape, its words in the request's language; `{"message": ...}` on the compat
    API (what its clients parse); a small page for the dashboard's browser pages."""
    path = request.url.path
    body["error"] = i18n.render(body["error"], language(request))
    if path.startswith(COMPAT_PREFIX):
        body = {"message": body["error"]}
    elif path.startswith(DASHBOARD_PREFIX):
        text = html.escape(str(body["error"]))
        # what no form could answer (a wrong address, an expired form): a page in the
        # dashboard's look, its words in the page's language, a way back
        page = (
            '<!doctype html><html><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>SMSGate</title><style>body{margin:0;font:16px/1.5 system-ui,sans-serif;"
            "color:#1b1f24;background:#f6f8fa}main{max-width:40rem;margin:2rem auto;"
            "padding:1rem;background:#fff;border:1px solid #d0d7de;border-radius:6px}"
            "p[role=alert]{color:#a40e26;font-weight:600}a{color:#0a58ca}</style></head>"
            f'<body><main><p><strong>SMSGate</strong> · {status}</p><p role="alert">{text}</p>'
            '<p><a href="/dashboard">← SMSGate</a></p></main></body></html>'
        )
        return HTMLResponse(page, status_code=status, headers=dict(headers or {}))
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        shown = exc.message
        if exc.for_people is not None and request.url.path.startswith(DASHBOARD_PREFIX):
            shown = exc.for_people
        body = error_body(shown, exc.code, exc.extra)
        return _answer(request, body, exc.status, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        field, text = describe_validation_error(errors[0]) if errors else ("", t("invalid request"))
        message = with_field(field, text) if field else text
        extra: dict[str, Any] = {"field": field} if field else {}
        return _answer(request, error_body(message, "validation_error", extra), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            body = error_body(t("no such endpoint; the API's reference is at /docs"), "not_found")
        elif exc.status_code == 405:
            body = error_body(
                t("this endpoint does not accept that HTTP method"), "method_not_allowed"
            )
        else:
            body = error_body(str(exc.detail), "http_error")
        return _answer(request, body, exc.status_code, exc.headers)

    @app.exception_handler(DBAPIError)
    async def _db_error(request: Request, exc: DBAPIError) -> Response:
        fault = database_fault(exc)
        if fault is not None:
            return _answer(request, error_body(*fault), 503, {"Retry-After": "5"})
        if getattr(exc.orig, "sqlstate", None) in _UNSTORABLE:
            # PostgreSQL cannot store some characters (NUL) in text, wherever they came from
            # (bodies are checked before; a query or path parameter may still carry one)
            return _answer(request, error_body(UNSTORABLE_TEXT, "validation_error"), 400)
        log.exception("database error", exc_info=exc)
        return _answer(request, error_body(t("internal error"), "internal_error"), 500)

    @app.exception_handler(OSError)
    async def _unreachable(request: Request, exc: OSError) -> Response:
        # A refused or timed-out connection (the database is down) surfaces as a plain OSError.
        log.error("dependency unreachable: %s", exc)
        body = error_body(
            t("the database or another service this server needs is unreachable; retry shortly"),
            "service_unavailable",
        )
        return _answer(request, body, 503, {"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        # Starlette answers a crash from outside every middleware, ours too: the request's id,
        # which its log lines carry, is added here, so the user can quote it
        rid = request.scope.get(logs.SCOPE_KEY)
        body = error_body(t("internal error"), "internal_error")
        return _answer(request, body, 500, {"X-Request-ID": rid} if rid else None)
