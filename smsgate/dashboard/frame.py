"""The dashboard's page frame, shared by every page module: rendering a page or a live
fragment in the reader's language with the account's times, the security headers, the signed-in
viewer of a page and of a posted form (its CSRF field checked first), and a form's refusal in
words."""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from cryptography.fernet import InvalidToken
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.accounts import preferences
from smsgate.accounts import service as accounts
from smsgate.accounts.auth import SESSION_COOKIE, rate_limit
from smsgate.accounts.service import Principal
from smsgate.dashboard.i18n import COOKIE, LANGUAGES, Words, language, translator
from smsgate.devices import pairing as pairings
from smsgate.errors import ApiError, bad_request, describe_validation_error, with_field
from smsgate.kit import i18n
from smsgate.kit.crypto import decrypt, encrypt, equal
from smsgate.kit.i18n import Text, t
from smsgate.messages import states
from smsgate.messages.schemas import template_with_body
from smsgate.storage.db import Database, DbSession

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def when(value: str | datetime | None, part: str = "full", *, zone: ZoneInfo, lang: str) -> str:
    """A stored time (ISO text or datetime, UTC) as the account reads it: in its time zone,
    in the page language's date order, labelled with the zone's abbreviation (16:57 CST).
    `part`: "full", "date" or "time". "—" for none."""
    if not value:
        return "—"
    at = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    local = at.astimezone(zone)
    day = local.strftime("%d/%m/%Y" if lang == "es" else "%Y-%m-%d")
    if part == "date":
        return day
    clock_time = f"{local:%H:%M} {local.tzname()}"
    return clock_time if part == "time" else f"{day} {clock_time}"


def sentence(exc: ValidationError | ApiError) -> str | Text:
    """What a form shows for a refused input: the same words as the API's error (rendered in
    the page's language by `page`)."""
    if isinstance(exc, ApiError):
        return exc.for_people or exc.message
    field, text = describe_validation_error(exc.errors()[0])
    return with_field(field, text) if field else text


# ?done=… after an action's redirect -> the word the page then shows at its top
DONE = {
    "key_revoked": "key_revoked",
    "webhook_deleted": "webhook_deleted",
    "template_deleted": "template_deleted",
    "campaign_cancelled": "campaign_cancelled",
    "device_deleted": "device_deleted",
    "opt_out_added": "opt_out_added",
    "opt_out_removed": "opt_out_removed",
    "cancelled": "cancelled_notice",
    "cancelling": "cancel_requested_notice",
    "edited": "edited_notice",
    "renamed": "renamed_notice",
    "saved": "saved",
    "password_changed": "password_changed",
    "test_sent": "test_sent_notice",
    "retrying": "retrying_notice",
}


# A secret shown once (an API key, a phone's pairing, a webhook's signing secret) rides from
# the POST that made it to the page it redirects to in this cookie: encrypted, for one reading.
REVEAL_COOKIE = "smsgate_reveal"
REVEAL_SECONDS = 120


def reveal_once(request: Request, principal: Principal, url: str, **shown: Any) -> RedirectResponse:
    """Redirect after a POST that made something shown only once: the page at `url` shows it
    (its template reads `shown`'s names) and forgets it, so reloading that page neither repeats
    the action nor shows the secret again. Only the same signed-in account reads it."""
    settings = request.app.state.settings
    if isinstance(shown.get("pairing"), dict):  # its QR code is drawn again, not carried
        shown["pairing"] = {k: v for k, v in shown["pairing"].items() if k != "qrSvg"}
    payload = {"account": principal.account_id, "shown": shown}
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        REVEAL_COOKIE,
        encrypt(settings.secret_key, json.dumps(payload)),
        max_age=REVEAL_SECONDS,
        httponly=True,
        samesite="strict",
        secure=bool(settings.cookie_secure),
        path="/dashboard",
    )
    return response


def _revealed(request: Request, principal: Principal | None) -> dict[str, Any]:
    raw = request.cookies.get(REVEAL_COOKIE)
    if not raw or principal is None:
        return {}
    try:
        payload = json.loads(decrypt(request.app.state.settings.secret_key, raw))
    except (InvalidToken, ValueError):
        return {}
    if payload.get("account") != principal.account_id:
        return {}
    shown: dict[str, Any] = payload.get("shown") or {}
    if isinstance(shown.get("pairing"), dict):  # its QR code is drawn again, not carried
        shown["pairing"] = pairings.with_qr(shown["pairing"])
    return shown


def page(
    request: Request,
    name: str,
    principal: Principal | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    lang = language(request)
    # an error or notice from the catalog, in the page's language
    context = {k: i18n.render(v, lang) if isinstance(v, Text) else v for k, v in context.items()}
    for key, value in _revealed(request, principal).items():
        if context.get(key) is None:
            context[key] = value
    done = request.query_params.get("done", "")
    if done in DONE:  # what an action just did, after its redirect
        context.setdefault("flash", translator(lang)[DONE[done]])
    if context.get("pairing"):  # say so when a real phone cannot reach the address it shows
        public_url = request.app.state.settings.public_url
        context["reach"] = pairings.phone_reachability(public_url)
    # the language switch keeps the page's own query (a filter, a page of results)
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    switch = {code: "?" + urlencode([*kept, ("lang", code)]) for code in LANGUAGES}
    response = templates.TemplateResponse(
        request,
        name,
        {
            **words_for(lang, principal),
            "switch": switch,
            "account": principal,
            "csrf": principal.csrf_token if principal else "",
            **context,
        },
        status_code=status,
    )
    if request.query_params.get("lang") == lang:
        response.set_cookie(COOKIE, lang, max_age=365 * 24 * 3600, samesite="lax")
    if REVEAL_COOKIE in request.cookies:  # shown once: gone
        response.delete_cookie(REVEAL_COOKIE, path="/dashboard")
    protect(response)
    return response


# Scripts only from this server (app.js): a message body that slipped through escaping could
# still not run. Inline styles stay allowed (the templates use style attributes).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
)


def protect(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"


def tally(words: Words, message: dict[str, Any]) -> str:
    """A send to several numbers whose recipients ended differently, in words: "2 de 3
    entregados · 1 fallido"; "" when they all share the message's state."""
    recipients = message.get("recipients") or []
    found = {r["state"] for r in recipients}
    if len(recipients) < 2 or len(found) < 2:
        return ""
    delivered = sum(1 for r in recipients if r["state"] == states.DELIVERED)
    failed = sum(1 for r in recipients if r["state"] == states.FAILED)
    parts = [words["tally_delivered"].format(n=delivered, total=len(recipients))]
    if failed:
        parts.append(words["tally_failed"].format(n=failed))
    return " · ".join(parts)


def say(words: Words, kind: str, value: str | None) -> str:
    """A stored value (a state, an error code, a channel, a log level) in the page's words:
    its catalog entry `kind_value`, or the value itself (a phone's own error text)."""
    if not value:
        return ""
    try:
        return words[f"{kind}_{value}"]
    except KeyError:
        return value


def log_line(words: Words, entry: dict[str, Any]) -> str:
    """A device log entry in the page's words: the server's own entries by their event
    (`log_<event>`, filled from the entry's details); what a phone wrote itself, as written."""
    try:
        return words[f"log_{entry['event']}"].format(**(entry.get("details") or {}))
    except (KeyError, IndexError, ValueError):
        return str(entry["message"])


def words_for(lang: str, principal: Principal | None) -> dict[str, Any]:
    """What every template reads: the words, `say` (stored values in words) and `when` (times
    in the account's zone)."""
    zone_name = principal.time_zone if principal else "UTC"
    words = translator(lang)
    return {
        "lang": lang,
        "t": words,
        "say": partial(say, words),
        "log_line": partial(log_line, words),
        "tally": partial(tally, words),
        "when": partial(when, zone=preferences.zone(zone_name), lang=lang),
        "zone": zone_name,
    }


def fragment(
    request: Request, principal: Principal, name: str, final: bool = False, **context: Any
) -> HTMLResponse:
    """A piece of a page for app.js to swap in (data-live); `final` stops the refreshing."""
    lang = language(request)
    response = templates.TemplateResponse(request, name, {**words_for(lang, principal), **context})
    protect(response)
    if final:
        response.headers["X-Live-Final"] = "1"
    return response


async def principal_of(request: Request, session: DbSession) -> Principal | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    return await accounts.principal_from_session(session, cookie) if cookie else None


class LoginRequired(Exception):
    """A page needs a logged-in session: answered with a redirect to the login page."""


async def viewer(request: Request, session: DbSession) -> Principal:
    principal = await principal_of(request, session)
    if principal is None:
        raise LoginRequired
    await rate_limit(request, principal)  # the account's browser budget, as the API's cookie
    return principal


def login_redirect() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


async def _poster(request: Request, session: DbSession) -> Principal:
    """The viewer of a posted form, after the form's `csrf` field was checked: every dashboard
    POST but login, sign-up and logout takes its viewer from here (before its fields are read,
    so a forged form is refused whatever else it holds)."""
    principal = await viewer(request, session)
    form = await request.form()  # Starlette keeps it: the route's Form() fields read it again
    check_csrf(principal, str(form.get("csrf", "")))
    return principal


Poster = Annotated[Principal, Depends(_poster)]


async def _sending_poster(request: Request) -> Principal:
    async with reading(request) as session:
        return await _poster(request, session)


# The viewer of a form that sends a message. Its route holds no session for the request: the
# send path takes the connection for its own transactions (SQLite's API process has one), so
# the route reads in short `reading` blocks around it.
SendingPoster = Annotated[Principal, Depends(_sending_poster)]


def reading(request: Request) -> AbstractAsyncContextManager[AsyncSession]:
    """A short session that only reads (Database.reading), for a route with no session of its
    own."""
    database: Database = request.app.state.db
    return database.reading()


def check_csrf(principal: Principal, csrf: str) -> None:
    if not principal.csrf_token or not equal(csrf, principal.csrf_token):
        raise ApiError(403, t("this form expired; reload the page and try again"), "csrf_failed")


def local_time(value: str, zone_name: str) -> str:
    """A datetime-local field's value (2026-11-28T09:30) in the account's time zone, as an ISO
    time with its offset."""
    try:
        at = datetime.fromisoformat(value)
        if at.tzinfo is not None:
            raise ValueError("a local time, without a zone")
    except ValueError as exc:
        raise bad_request(
            t("scheduleAt: use a date and time like 2026-11-28T09:30"), field="scheduleAt"
        ) from exc
    return at.replace(tzinfo=preferences.zone(zone_name)).isoformat()


def template_body(name: str, language: str, values: str) -> dict[str, Any]:
    """The send's `template` from the form: its name, language (es_MX unless given) and the
    body's variables, one a line."""
    lines = [line.strip() for line in values.splitlines() if line.strip()]
    return template_with_body(name.strip(), language.strip() or "es_MX", lines)
