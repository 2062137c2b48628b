"""Dashboard pages: the same services as the API, a session cookie, a CSRF field in each form."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from smsgate.accounts import flows, preferences, reset, scopes
from smsgate.accounts import service as accounts
from smsgate.accounts.auth import SESSION_COOKIE, AppSettings, set_session_cookie
from smsgate.accounts.preferences import AccountSettingsPatch, change_settings, settings_out
from smsgate.accounts.schemas import key_out
from smsgate.accounts.service import Principal
from smsgate.billing import service as billing
from smsgate.config import Settings
from smsgate.conversations import service as conversations
from smsgate.dashboard import campaign_pages
from smsgate.dashboard.frame import (
    LoginRequired,
    Poster,
    SendingPoster,
    reading,
)
from smsgate.dashboard.frame import (
    check_csrf as _check_csrf,
)
from smsgate.dashboard.frame import (
    fragment as _fragment,
)
from smsgate.dashboard.frame import (
    local_time as _local_time,
)
from smsgate.dashboard.frame import (
    login_redirect as _login_redirect,
)
from smsgate.dashboard.frame import (
    page as _page,
)
from smsgate.dashboard.frame import (
    principal_of as _principal,
)
from smsgate.dashboard.frame import (
    sentence as _sentence,
)
from smsgate.dashboard.frame import (
    viewer as _viewer,
)
from smsgate.dashboard.i18n import language, translator
from smsgate.devices import removal
from smsgate.devices import service as devices
from smsgate.devices import settings as device_settings
from smsgate.errors import ApiError
from smsgate.kit import clock, phones
from smsgate.kit.crypto import derive_key, equal
from smsgate.kit.i18n import Text, t
from smsgate.kit.ids import is_id
from smsgate.kit.responses import api_router
from smsgate.messages import attachments, queries, states
from smsgate.messages import service as messages
from smsgate.messages.schemas import SendRequest, message_out, template_with_body
from smsgate.notify.hub import AppHub
from smsgate.storage.db import Database, DbSession, ReadSession
from smsgate.webhooks import service as webhooks
from smsgate.webhooks.events import CATALOG
from smsgate.whatsapp import service as whatsapp

router = api_router(include_in_schema=False)
APP_JS = (Path(__file__).parent / "static" / "app.js").read_bytes()


@router.get("/dashboard/static/app.js", include_in_schema=False)
async def app_js() -> Response:
    return Response(
        APP_JS,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _to_login(_: Request, __: LoginRequired) -> Response:
        return _login_redirect()


@router.get("/")
async def home(request: Request, session: ReadSession) -> Response:
    if await _principal(request, session):
        return RedirectResponse("/dashboard", status_code=303)
    return _login_redirect()


PRESESSION_COOKIE = "smsgate_presession"


def _auth_page(
    request: Request, settings: Settings, mode: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """The login or sign-up form, with its CSRF field tied to a pre-session cookie (kept if the
    browser has one): a form posted from another site carries neither, so it cannot log a
    browser into someone else's account (login CSRF)."""
    title = "Login" if mode == "login" else "Sign up"
    return _presession_page(
        request, settings, "auth.html", status, mode=mode, title=title, **context
    )


def _presession_token(presession: str, settings: Settings) -> str:
    key = derive_key(settings.secret_key, "dashboard/login-csrf")
    return hmac.new(key, presession.encode(), hashlib.sha256).hexdigest()


@router.get("/login")
async def login_page(request: Request, settings: AppSettings) -> HTMLResponse:
    return _auth_page(request, settings, "login")


@router.get("/signup")
async def signup_page(request: Request, settings: AppSettings) -> HTMLResponse:
    return _auth_page(request, settings, "signup")


@router.post("/login")
@router.post("/signup")
async def auth_form(
    request: Request,
    settings: AppSettings,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    mode = "signup" if request.url.path == "/signup" else "login"
    presession = request.cookies.get(PRESESSION_COOKIE, "")
    if not presession or not equal(csrf, _presession_token(presession, settings)):
        expired = translator(language(request)).form_expired
        return _auth_page(request, settings, mode, status=403, error=expired, email=email)
    client = request.client.host if request.client else "unknown"
    try:
        raw = await flows.sign_in(
            request.app.state.db,
            settings,
            signup=mode == "signup",
            email=email,
            password=password,
            client=client,
        )
    except ApiError as exc:
        return _auth_page(
            request, settings, mode, status=exc.status, error=_sentence(exc), email=email
        )
    response = RedirectResponse("/dashboard", status_code=303)
    set_session_cookie(response, raw, settings)
    return response


def _presession_page(
    request: Request, settings: Settings, name: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """A page with a form posted before signing in (login, sign-up, forgot, reset): its CSRF
    field tied to a pre-session cookie (kept if the browser has one)."""
    presession = request.cookies.get(PRESESSION_COOKIE) or secrets.token_urlsafe(24)
    response = _page(
        request,
        name,
        None,
        status=status,
        form_csrf=_presession_token(presession, settings),
        mail=bool(settings.smtp_url),
        **context,
    )
    response.set_cookie(
        PRESESSION_COOKIE,
        presession,
        max_age=2 * 3600,
        httponly=True,
        samesite="strict",
        secure=bool(settings.cookie_secure),
        path="/",
    )
    return response


def _presession_ok(request: Request, settings: Settings, csrf: str) -> bool:
    presession = request.cookies.get(PRESESSION_COOKIE, "")
    return bool(presession) and equal(csrf, _presession_token(presession, settings))


@router.get("/forgot")
async def forgot_page(request: Request, settings: AppSettings) -> HTMLResponse:
    """Ask for a reset link by email (or, without SMTP, who can reset it)."""
    return _presession_page(request, settings, "forgot.html", title="Password")


@router.post("/forgot")
async def forgot_form(
    request: Request,
    settings: AppSettings,
    email: Annotated[str, Form(max_length=320)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    words = translator(language(request))
    if not _presession_ok(request, settings, csrf):
        return _presession_page(
            request, settings, "forgot.html", 403, title="Password", error=words.form_expired
        )
    if not settings.smtp_url:
        return _presession_page(request, settings, "forgot.html", 400, title="Password")
    client = request.client.host if request.client else "unknown"
    try:
        await reset.request_link(request.app.state.db, settings, email, client, language(request))
    except ApiError as exc:
        return _presession_page(
            request, settings, "forgot.html", exc.status, title="Password", error=_sentence(exc)
        )
    return _presession_page(request, settings, "forgot.html", title="Password", asked=email)


@router.get("/reset")
async def reset_page(
    request: Request, session: ReadSession, settings: AppSettings, token: str = ""
) -> HTMLResponse:
    """The new-password form of a reset link (told at once if the link is no good)."""
    try:
        await reset.account_of(session, settings, token)
    except ApiError as exc:
        return _presession_page(
            request, settings, "reset.html", exc.status, title="Password", error=_sentence(exc)
        )
    return _presession_page(request, settings, "reset.html", title="Password", token=token)


@router.post("/reset")
async def reset_form(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    token: Annotated[str, Form(max_length=400)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """A new password: every session and token of the account is signed out, this browser is
    signed in."""
    words = translator(language(request))
    if not _presession_ok(request, settings, csrf):
        return _presession_page(
            request, settings, "reset.html", 403, title="Password", error=words.form_expired
        )
    try:
        account = await reset.account_of(session, settings, token)
        await accounts.set_password(session, account, password)
    except ApiError as exc:
        return _presession_page(
            request,
            settings,
            "reset.html",
            exc.status,
            title="Password",
            error=_sentence(exc),
            token=token,
        )
    raw, _ = await accounts.start_session(session, account, settings)
    response = RedirectResponse("/dashboard", status_code=303)
    set_session_cookie(response, raw, settings)
    return response


@router.post("/dashboard/logout")
async def logout(
    request: Request, session: DbSession, csrf: Annotated[str, Form()] = ""
) -> Response:
    principal = await _principal(request, session)
    if principal is not None:
        _check_csrf(principal, csrf)
        await accounts.end_session(session, principal.account_id, principal.credential_id)
    response = _login_redirect()
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/dashboard")
async def overview(request: Request, session: ReadSession, settings: AppSettings) -> Response:
    principal = await _viewer(request, session)
    account = await accounts.get_account(session, principal.account_id)
    found = await devices.list_devices(session, principal.account_id)
    counts = {
        status: sum(1 for d in found if d.status == status)
        for status in ("online", "offline", "pending")
    }
    # "today" is the account's day, from its midnight
    local = clock.now().astimezone(preferences.zone(principal.time_zone))
    start = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    today = await queries.count_by_state(session, principal.account_id, start)
    summary = await billing.summary(
        session, account, settings, await attachments.stored_bytes(session, account.id)
    )
    hooks = await webhooks.list_all(session, principal.account_id)
    sent_once = await queries.has_sent(session, principal.account_id)
    # the first run's three steps, each ticked by what the account has done; gone once all are
    steps = [
        ("first_phone", "/dashboard/devices", any(d.status != "pending" for d in found)),
        ("first_send", "/dashboard/send", sent_once),
        ("first_key", "/dashboard/keys", summary["usage"]["apiKeys"] > 0),
    ]
    return _page(
        request,
        "overview.html",
        principal,
        page="overview",
        title="Overview",
        steps=None if all(done for _, _, done in steps) else steps,
        disabled_webhooks=sum(1 for h in hooks if not h.enabled),
        devices=counts,
        today=today,
        billing=summary,
        **await _last_30_days(session, account.id, principal.time_zone),
    )


async def _last_30_days(session: DbSession, account_id: str, zone: str) -> dict[str, Any]:
    """What _chart.html draws: messages per day (the account's days), and the tallest day."""
    today = clock.now().astimezone(preferences.zone(zone)).date()
    days = await billing.daily(session, account_id, today - timedelta(days=29), today)
    return {"days": days, "peak": max([1, *(d["messages"] for d in days)])}


@router.get("/dashboard/devices")
async def devices_page(request: Request, session: ReadSession) -> Response:
    principal = await _viewer(request, session)
    found = await devices.list_devices(session, principal.account_id)
    return _page(
        request,
        "devices.html",
        principal,
        page="devices",
        title="Devices",
        devices=[devices.device_out(d) for d in found],
    )


@router.get("/dashboard/devices/rows", include_in_schema=False)
async def device_rows(request: Request, session: ReadSession) -> Response:
    """The devices table's rows, refreshed by the page every few seconds (live status)."""
    principal = await _viewer(request, session)
    found = await devices.list_devices(session, principal.account_id)
    return _fragment(
        request, principal, "_device_rows.html", devices=[devices.device_out(d) for d in found]
    )


@router.post("/dashboard/devices")
async def add_device(
    principal: Poster,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    name: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    pairing = None
    error = None
    try:
        _, issued = await devices.create_android(
            session, principal.account_id, name.strip() or "Android", settings
        )
        pairing = devices.pairing_out(issued)
    except ApiError as exc:
        error = _sentence(exc)
    found = await devices.list_devices(session, principal.account_id)
    return _page(
        request,
        "devices.html",
        principal,
        page="devices",
        title="Devices",
        devices=[devices.device_out(d) for d in found],
        pairing=pairing,
        created_name=name,
        error=error,
    )


@router.get("/dashboard/send")
async def send_page(
    request: Request,
    session: ReadSession,
    sent: str = "",
    to: Annotated[str, Query(max_length=512)] = "",
) -> Response:
    """The send form; with `sent`, after the form's redirect, the message just sent (a reload
    shows it again and sends nothing); with `to`, the form addressed to that number (a thread
    whose phone was deleted links here)."""
    principal = await _viewer(request, session)
    found = await devices.list_devices(session, principal.account_id)
    result = None
    if sent and is_id(sent):
        with contextlib.suppress(ApiError):  # not this account's, or deleted: the empty form
            result = await messages.get_message(session, principal.account_id, sent)
    return _page(
        request,
        "send.html",
        principal,
        page="send",
        title="Send",
        devices=found,
        result=result,
        numbers=to,
    )


@router.post("/dashboard/send")
async def send_form(
    principal: SendingPoster,
    request: Request,
    numbers: Annotated[str, Form(max_length=5000)] = "",
    message: Annotated[str, Form(max_length=5000)] = "",
    device: Annotated[str, Form()] = "",
    channel: Annotated[str, Form()] = "sms",
    priority: Annotated[str, Form()] = "0",
    ttl: Annotated[str, Form()] = "",
    schedule: Annotated[str, Form(max_length=40)] = "",
    wa_template: Annotated[str, Form(max_length=512)] = "",
    wa_language: Annotated[str, Form(max_length=15)] = "",
    wa_values: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    recipients = [n.strip() for n in numbers.replace(",", "\n").splitlines() if n.strip()]
    result = None
    error = None
    try:
        fields: dict[str, Any] = {
            "channel": channel,
            "phoneNumbers": recipients,
            "message": message,
            "deviceId": device or None,
            "priority": int(priority) if priority.lstrip("-").isdigit() else priority,
        }
        if ttl.strip():
            fields["ttl"] = int(ttl) if ttl.strip().isdigit() else ttl
        if channel == "whatsapp" and wa_template.strip():
            # an approved template (the only way to write first, or after 24 hours): its body's
            # parameters one per line, the text box left empty
            fields["template"] = _template_body(wa_template, wa_language, wa_values)
            fields["message"] = message.strip() or None
        if schedule.strip():
            fields["scheduleAt"] = _local_time(schedule.strip(), principal.time_zone)
        body = SendRequest.model_validate(fields)
        result, created = await messages.queue_message(
            request.app.state.db, request.app.state.send_writer, principal, body
        )
        messages.announce(request.app.state.hub, principal.account_id, body, created)
        # after a POST, a redirect: reloading the result must not send the message again
        return RedirectResponse(f"/dashboard/send?sent={result['id']}", status_code=303)
    except (ValidationError, ApiError) as exc:
        error = _sentence(exc)
    async with reading(request) as session:
        found = await devices.list_devices(session, principal.account_id)
    return _page(
        request,
        "send.html",
        principal,
        page="send",
        title="Send",
        devices=found,
        result=result,
        error=error,
        numbers=None if result else numbers,
        message=None if result else message,
        form={
            "channel": channel,
            "priority": priority,
            "ttl": ttl,
            "device": device,
            "schedule": schedule,
            "wa_template": wa_template,
            "wa_language": wa_language,
            "wa_values": wa_values,
        },
    )


def _template_body(name: str, language: str, values: str) -> dict[str, Any]:
    """The send's `template` from the form: its name, language (es_MX unless given) and the
    body's variables, one a line."""
    lines = [line.strip() for line in values.splitlines() if line.strip()]
    return template_with_body(name.strip(), language.strip() or "es_MX", lines)


def _day(value: str, field: str, zone: str, end: bool = False) -> datetime | None:
    """A date from the filter form (YYYY-MM-DD), the account's day: its midnight in its time
    zone; `end` gives the next midnight."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d")
    except ValueError as exc:
        raise ValueError(t("{field}: use a date like 2026-11-27", field=field)) from exc
    if end:
        day += timedelta(days=1)
    return day.replace(tzinfo=preferences.zone(zone)).astimezone(UTC)


@router.get("/dashboard/messages")
async def messages_page(request: Request, session: ReadSession) -> Response:
    """Messages filtered by direction, state, device, number and dates, newest first, with
    cursor paging (the same query as GET /api/v1/messages)."""
    principal = await _viewer(request, session)
    query = request.query_params
    form = {
        name: query.get(name, "").strip()
        for name in ("direction", "state", "device", "number", "since", "until")
    }
    cursor = query.get("cursor") or None
    error: str | Text | None = None
    data: list[dict[str, Any]] = []
    next_cursor = None
    try:
        number = phones.normalize(form["number"], principal.region) if form["number"] else None
        filters = queries.MessageFilter(
            direction=form["direction"] if form["direction"] in ("in", "out") else None,
            # "failed" finds every message with a failed recipient, partly delivered ones too
            state=form["state"]
            if form["state"] in states.ALL and form["state"] != states.FAILED
            else None,
            recipient_state=states.FAILED if form["state"] == states.FAILED else None,
            scheduled=form["state"] == "scheduled",
            device_id=form["device"] or None,
            phone_number=number,
            since=_day(form["since"], "since", principal.time_zone),
            until=_day(form["until"], "until", principal.time_zone, end=True),
        )
        if cursor is not None and not is_id(cursor):
            raise ValueError(t("this page link is broken; start from the first page"))
        data, next_cursor = await queries.list_messages(
            session, principal.account_id, filters, 50, cursor
        )
    except (ValueError, phones.InvalidPhoneNumber) as exc:
        reason = exc.args[0] if exc.args else ""
        error = reason if isinstance(reason, Text) else str(exc)  # in the page's language
    found = await devices.list_devices(session, principal.account_id)
    keep = {name: value for name, value in form.items() if value}
    return _page(
        request,
        "messages.html",
        principal,
        page="messages",
        title="Messages",
        messages=data,
        form=form,
        states=states.ALL,
        devices=[devices.device_out(d) for d in found],
        next_url=f"/dashboard/messages?{urlencode({**keep, 'cursor': next_cursor})}"
        if next_cursor
        else None,
        first_url=f"/dashboard/messages?{urlencode(keep)}" if cursor else None,
        error=error,
    )


@router.get("/dashboard/messages/{message_id}/recipients", include_in_schema=False)
async def message_recipients(message_id: str, request: Request, session: ReadSession) -> Response:
    """A message's recipients and states, refreshed until the message is final."""
    principal = await _viewer(request, session)
    message = await messages.get_message(session, principal.account_id, message_id)
    return _fragment(
        request,
        principal,
        "_recipients.html",
        final=message["state"] in states.FINAL,
        message=message,
    )


@router.get("/dashboard/messages/{message_id}")
async def message_page(message_id: str, request: Request, session: ReadSession) -> Response:
    """One message: its recipients and its state history as a timeline; what can be done with
    it (cancel while no phone sent it, resend to the numbers that failed)."""
    principal = await _viewer(request, session)
    return await _message_page(request, session, principal, message_id)


async def _message_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    message_id: str,
    error: str | Text | None = None,
) -> HTMLResponse:
    message = await messages.get_message(session, principal.account_id, message_id)
    return _page(
        request,
        "message.html",
        principal,
        page="messages",
        title=message["id"],
        message=message,
        cancellable=message["direction"] == "out"
        and message["state"] == states.PROCESSING
        and not message.get("cancelRequested"),
        resendable=_resendable(message),
        editable=_editable(message),
        local_schedule=_local_input(message.get("scheduleAt"), principal.time_zone),
        error=error,
    )


def _editable(message: dict[str, Any]) -> bool:
    """A scheduled text still waiting for its time (messages.service.edit_scheduled's rule,
    asked again there)."""
    at = message.get("scheduleAt")
    return (
        message["direction"] == "out"
        and message["state"] == states.PROCESSING
        and message["channel"] in ("sms", "whatsapp")
        and not message.get("template")
        and not message.get("isEncrypted")
        and not message.get("cancelRequested")
        and at is not None
        and datetime.fromisoformat(at.replace("Z", "+00:00")) > clock.now()
    )


def _local_input(value: str | None, zone_name: str) -> str:
    """A stored time as a datetime-local field shows it, in the account's zone."""
    if not value:
        return ""
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return at.astimezone(preferences.zone(zone_name)).strftime("%Y-%m-%dT%H:%M")


def _resendable(message: dict[str, Any]) -> list[str]:
    """The numbers a sent message failed to reach, when it can be sent again as it was."""
    if message["direction"] != "out" or message.get("isEncrypted"):
        return []
    return [r["phoneNumber"] for r in message["recipients"] if r["state"] == states.FAILED]


@router.post("/dashboard/messages/{message_id}/cancel")
async def cancel_form(
    message_id: str, principal: Poster, request: Request, session: DbSession, hub: AppHub
) -> Response:
    """Cancel a send no phone has sent yet (a scheduled reminder, one still queued); a phone
    that holds it is asked, once this commits."""
    try:
        _, device_id = await messages.cancel_message(session, hub, principal.account_id, message_id)
    except ApiError as exc:
        return await _message_page(request, session, principal, message_id, _sentence(exc))
    done = "cancelling" if device_id is not None else "cancelled"
    return RedirectResponse(f"/dashboard/messages/{message_id}?done={done}", status_code=303)


@router.post("/dashboard/messages/{message_id}/edit")
async def edit_form(
    message_id: str,
    principal: Poster,
    request: Request,
    session: DbSession,
    message: Annotated[str, Form(max_length=5000)] = "",
    schedule: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """A scheduled reminder's text and local time, changed while it waits."""
    try:
        at = None
        if schedule.strip():
            at = datetime.fromisoformat(_local_time(schedule.strip(), principal.time_zone))
        await messages.edit_scheduled(session, principal, message_id, message or None, at)
    except ValidationError as exc:
        return await _message_page(request, session, principal, message_id, _sentence(exc))
    except ApiError as exc:
        return await _message_page(request, session, principal, message_id, _sentence(exc))
    return RedirectResponse(f"/dashboard/messages/{message_id}?done=edited", status_code=303)


@router.post("/dashboard/messages/{message_id}/resend")
async def resend_form(message_id: str, principal: SendingPoster, request: Request) -> Response:
    """The same message again, to the numbers it failed to reach: a new send."""
    async with reading(request) as session:
        message = await messages.get_message(session, principal.account_id, message_id)
        numbers = _resendable(message)
        if not numbers:
            error = t("this message has no failed number to send to again")
            return await _message_page(request, session, principal, message_id, error)
    fields: dict[str, Any] = {
        "channel": message["channel"],
        "phoneNumbers": numbers,
        "message": message["message"],
        "priority": message["priority"],
    }
    for name in ("mediaUrls", "template", "port"):
        if message.get(name):
            fields[name] = message[name]
    try:
        body = SendRequest.model_validate(fields)
        result, created = await messages.queue_message(
            request.app.state.db, request.app.state.send_writer, principal, body
        )
    except (ValidationError, ApiError) as exc:
        async with reading(request) as session:
            return await _message_page(request, session, principal, message_id, _sentence(exc))
    messages.announce(request.app.state.hub, principal.account_id, body, created)
    return RedirectResponse(f"/dashboard/messages/{result['id']}", status_code=303)


async def _keys_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    new_key: str | None = None,
    error: str | Text | None = None,
) -> HTMLResponse:
    found = await accounts.list_keys(session, principal.account_id)
    return _page(
        request,
        "keys.html",
        principal,
        status=400 if error else 200,
        page="keys",
        title="API keys",
        keys=[key_out(k) for k in found],
        new_key=new_key,
        scopes=list(scopes.ALL),
        server=request.app.state.settings.public_url.rstrip("/"),
        error=error,
    )


@router.get("/dashboard/keys")
async def keys_page(request: Request, session: ReadSession) -> Response:
    principal = await _viewer(request, session)
    return await _keys_page(request, session, principal)


@router.post("/dashboard/keys")
async def create_key(
    principal: Poster,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """A new key with the scopes ticked (every scope when the form sends none): shown once,
    with ready-to-copy calls that use it."""
    form = await request.form()
    ticked = [v for k, v in form.multi_items() if k == "scope" and isinstance(v, str)]
    try:
        chosen = scopes.parse(ticked or None)
    except ApiError as exc:
        return await _keys_page(request, session, principal, error=_sentence(exc))
    _, raw = await accounts.create_key(
        session, principal.account_id, name.strip() or "key", chosen, settings
    )
    return await _keys_page(request, session, principal, new_key=raw)


@router.post("/dashboard/keys/{key_id}/revoke")
async def revoke_key(
    principal: Poster, key_id: str, request: Request, session: DbSession
) -> Response:
    await accounts.revoke_key(session, principal.account_id, key_id)
    return RedirectResponse("/dashboard/keys?done=key_revoked", status_code=303)


async def _thread(
    request: Request, session: DbSession, principal: Principal, conversation_id: str
) -> Any:
    """A thread, marked read (the person is looking at it), with its last 100 messages. The
    page refreshes it every few seconds: it is marked in a transaction that writes only when
    something is unread, so an open thread holds no write lock while nothing arrives."""
    found = await conversations.get(session, principal.account_id, conversation_id)
    if await conversations.is_unread(session, found):
        await session.rollback()  # frees the connection (SQLite has one) for the write below
        database: Database = request.app.state.db
        async with database.transaction() as writing:
            found = await conversations.get(writing, principal.account_id, conversation_id)
            found = await conversations.mark_read(writing, found, None)
    rows, _ = await conversations.messages_page(session, found, 100, None)
    return found, [message_out(row, [recipient]) for row, recipient in reversed(rows)]


@router.get("/dashboard/conversations/{conversation_id}/thread", include_in_schema=False)
async def thread_fragment(conversation_id: str, request: Request, session: ReadSession) -> Response:
    """The open thread's messages, refreshed by the page: new replies and states appear."""
    principal = await _viewer(request, session)
    _, thread = await _thread(request, session, principal, conversation_id)
    return _fragment(request, principal, "_thread.html", thread=thread)


async def _threads(request: Request, session: DbSession, principal: Principal) -> list[Any]:
    query = request.query_params.get("q")
    page, _ = await conversations.list_page(
        session,
        principal.account_id,
        limit=100,
        cursor=None,
        unread=False,
        query=query.strip() if query else None,
        archived=False,
    )
    return await conversations.threads_out(session, page)


@router.get("/dashboard/conversations/list", include_in_schema=False)
async def threads_fragment(request: Request, session: ReadSession) -> Response:
    """The thread list (unread badges, last message), refreshed by the page."""
    principal = await _viewer(request, session)
    current = request.query_params.get("current")
    return _fragment(
        request,
        principal,
        "_threads.html",
        threads=await _threads(request, session, principal),
        current={"id": current} if current else None,
    )


async def _conversations_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    conversation_id: str | None,
    error: str | Text | None = None,
) -> HTMLResponse:
    query = request.query_params.get("q")
    current = None
    thread: list[dict[str, Any]] = []
    if conversation_id:
        found, thread = await _thread(request, session, principal, conversation_id)  # read on open
        current = (await conversations.threads_out(session, [found]))[0]
    keep = {"q": query or "", **({"current": conversation_id} if conversation_id else {})}
    return _page(
        request,
        "conversations.html",
        principal,
        page="conversations",
        title="Conversations",
        threads=await _threads(request, session, principal),  # after the read: counts are fresh
        current=current,
        thread=thread,
        q=query,
        list_query=urlencode(keep),
        error=error,
    )


@router.get("/dashboard/conversations")
async def conversations_page(request: Request, session: ReadSession) -> Response:
    principal = await _viewer(request, session)
    return await _conversations_page(request, session, principal, None)


@router.get("/dashboard/conversations/{conversation_id}")
async def conversation_page(
    conversation_id: str, request: Request, session: ReadSession
) -> Response:
    principal = await _viewer(request, session)
    return await _conversations_page(request, session, principal, conversation_id)


@router.post("/dashboard/conversations/{conversation_id}")
async def reply(
    principal: SendingPoster,
    conversation_id: str,
    request: Request,
    message: Annotated[str, Form(max_length=5000)] = "",
    wa_template: Annotated[str, Form(max_length=512)] = "",
    wa_language: Annotated[str, Form(max_length=15)] = "",
    wa_values: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    async with reading(request) as session:
        thread = await conversations.get(session, principal.account_id, conversation_id)
    try:
        fields: dict[str, Any] = {**conversations.reply_fields(thread), "message": message}
        if thread.family == "whatsapp" and wa_template.strip():  # after the 24-hour window
            fields["template"] = _template_body(wa_template, wa_language, wa_values)
            fields["message"] = message.strip() or None
        body = SendRequest.model_validate(fields)
        _, created = await messages.queue_message(
            request.app.state.db, request.app.state.send_writer, principal, body
        )
        messages.announce(request.app.state.hub, principal.account_id, body, created)
    except (ValidationError, ApiError) as exc:
        async with reading(request) as session:
            return await _conversations_page(
                request, session, principal, conversation_id, _sentence(exc)
            )
    return RedirectResponse(f"/dashboard/conversations/{conversation_id}", status_code=303)


async def _webhooks_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    secret: str | None = None,
    error: str | Text | None = None,
    given: dict[str, Any] | None = None,
    warning: str | None = None,
) -> HTMLResponse:
    """The webhooks page; `given`: the new-webhook form's input, shown again with its error."""
    hooks = await webhooks.list_all(session, principal.account_id)
    recent = {}
    for hook in hooks:
        rows, _ = await webhooks.deliveries(session, hook, None, 10, None)
        recent[hook.id] = [webhooks.delivery_out(d, e, a) for d, e, a in rows]
    return _page(
        request,
        "webhooks.html",
        principal,
        page="webhooks",
        title="Webhooks",
        hooks=[webhooks.webhook_out(h) for h in hooks],
        disabled_webhooks=sum(1 for h in hooks if not h.enabled),
        deliveries=recent,
        catalog=list(CATALOG),
        secret=secret,
        error=error,
        given=given or {},
        warning=warning,
    )


@router.get("/dashboard/webhooks")
async def webhooks_page(request: Request, session: ReadSession) -> Response:
    principal = await _viewer(request, session)
    return await _webhooks_page(request, session, principal)


@router.post("/dashboard/webhooks")
async def create_webhook(
    principal: Poster,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    url: Annotated[str, Form(max_length=2048)] = "",
    events: Annotated[list[str] | None, Form()] = None,  # none ticked: said on the page
    format: Annotated[str, Form()] = "native",
) -> Response:
    events = events or []
    try:
        _, secret = await webhooks.create(
            session,
            principal.account_id,
            settings,
            url=url,
            events=events,
            device_id=None,
            fmt=format,
        )
    except ApiError as exc:
        given = {"url": url, "events": events}
        return await _webhooks_page(request, session, principal, error=_sentence(exc), given=given)
    # accepted (a receiver on the local network may be plain HTTP), but never silently
    plain = url.strip().lower().startswith("http://")
    warning = translator(language(request)).webhook_plain_http if plain else None
    return await _webhooks_page(request, session, principal, secret=secret, warning=warning)


@router.post("/dashboard/webhooks/{webhook_id}/edit")
async def edit_webhook(
    principal: Poster, webhook_id: str, request: Request, session: DbSession, settings: AppSettings
) -> Response:
    """Change a webhook's URL, events and whether it is enabled (as PATCH /api/webhooks/{id})."""
    form = await request.form()
    hook = await webhooks.get(session, principal.account_id, webhook_id)
    given = {
        "url": str(form.get("url") or "").strip(),
        "events": [str(e) for e in form.getlist("events")],
        "enabled": form.get("enabled") == "yes",
    }
    try:
        await webhooks.change(session, hook, settings, given)
    except ApiError as exc:
        await session.rollback()
        return await _webhooks_page(request, session, principal, error=_sentence(exc))
    return await _webhooks_page(request, session, principal)


@router.post("/dashboard/webhooks/{webhook_id}/deliveries/{delivery_id}/retry")
async def retry_delivery(
    principal: Poster,
    webhook_id: str,
    delivery_id: str,
    request: Request,
    session: DbSession,
) -> Response:
    hook = await webhooks.get(session, principal.account_id, webhook_id)
    await webhooks.retry(session, hook, delivery_id)
    return await _webhooks_page(request, session, principal)


@router.post("/dashboard/webhooks/{webhook_id}/{action}")
async def webhook_action(
    principal: Poster,
    webhook_id: str,
    action: str,
    request: Request,
    session: DbSession,
    settings: AppSettings,
) -> Response:
    hook = await webhooks.get(session, principal.account_id, webhook_id)
    secret = None
    if action == "test":
        await webhooks.test(session, hook)
    elif action == "secret":
        secret = webhooks.secrets_of(hook, settings)[0]
    elif action == "rotate":
        secret = await webhooks.rotate(session, hook, settings, webhooks.DEFAULT_OVERLAP_SECONDS)
    elif action == "delete":
        await session.delete(hook)
        await session.flush()
        return RedirectResponse("/dashboard/webhooks?done=webhook_deleted", status_code=303)
    else:
        raise ApiError(404, t("no such action"), "not_found")
    return await _webhooks_page(request, session, principal, secret=secret)


@router.get("/dashboard/billing")
async def billing_page(request: Request, session: ReadSession, settings: AppSettings) -> Response:
    principal = await _viewer(request, session)
    account = await accounts.get_account(session, principal.account_id)
    summary = await billing.summary(
        session, account, settings, await attachments.stored_bytes(session, account.id)
    )
    limits, usage = summary["plan"]["limits"], summary["usage"]
    bars = [
        # each bar named by its word (t.messages …)
        ("messages", usage["messages"], limits["messagesPerPeriod"]),
        ("devices", usage["devices"], limits["devices"]),
        ("webhooks", usage["webhooks"], limits["webhooks"]),
        ("keys", usage["apiKeys"], limits["apiKeys"]),
    ]
    return _page(
        request,
        "billing.html",
        principal,
        page="billing",
        title="Billing",
        billing=summary,
        bars=bars,
        **await _last_30_days(session, account.id, principal.time_zone),
    )


CHOICES = [
    ("simSelectionMode", ("OSDefault", "RoundRobin", "Random")),
    ("limitPeriod", ("Disabled", "PerMinute", "Per30Minutes", "PerHour", "PerDay")),
    ("processingOrder", ("LIFO", "FIFO")),
]
NUMBERS = ("limitValue", "sendIntervalMin", "sendIntervalMax", "pingIntervalSeconds")


async def _device_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    device_id: str,
    notice: str | None = None,
    error: str | Text | None = None,
    pairing: dict[str, Any] | None = None,
) -> HTMLResponse:
    device = await devices.get_device(session, principal.account_id, device_id)
    level = request.query_params.get("level") or None
    if level not in devices.LOG_LEVELS:
        level = None
    logs, _ = await devices.list_logs(session, principal.account_id, device_id, level, 50, None)
    settings: Settings = request.app.state.settings
    waiting_for_scan = device.provider == "web" and (device.link or {}).get("state") == "pairing"
    code = devices.link_qr(device)
    return _page(
        request,
        "device.html",
        principal,
        page="devices",
        title=device.name,
        device=devices.device_out(device, settings.public_url),
        settings=device_settings.effective(device.settings or {}),
        qr_svg=devices.qr_svg(code) if code else None,
        refresh=5 if waiting_for_scan else None,  # the QR code changes every ~20 s
        pairing=pairing,
        public_url=settings.public_url,
        choices=CHOICES,
        numbers=NUMBERS,
        logs=[devices.log_out(e) for e in logs],
        level=level,
        notice=notice,
        error=error,
        at_stake=await removal.at_stake(session, principal.account_id, device_id),
    )


@router.get("/dashboard/devices/{device_id}")
async def device_page(device_id: str, request: Request, session: ReadSession) -> Response:
    principal = await _viewer(request, session)
    return await _device_page(request, session, principal, device_id)


@router.post("/dashboard/devices/{device_id}/settings")
async def device_settings_form(
    principal: Poster, device_id: str, request: Request, session: DbSession, hub: AppHub
) -> Response:
    form = await request.form()
    device = await devices.get_device(session, principal.account_id, device_id)
    values: dict[str, Any] = {name: form.get(name) for name, _ in CHOICES if form.get(name)}
    for name in NUMBERS:
        raw = str(form.get(name) or "").strip()
        if raw:
            values[name] = int(raw) if raw.isdigit() else raw
    try:
        patch = device_settings.SettingsPatch.model_validate(values)
        devices.update_settings(session, hub, device, patch)
    except (ValidationError, ApiError) as exc:
        return await _device_page(request, session, principal, device_id, error=_sentence(exc))
    await session.flush()
    lang = language(request)
    return await _device_page(
        request, session, principal, device_id, notice=translator(lang)["saved"]
    )


WHATSAPP_KEYS = ("phoneNumberId", "accessToken", "appSecret", "verifyToken")


def _given(form: Any, names: tuple[str, ...]) -> dict[str, str]:
    return {
        name: str(form.get(name)).strip() for name in names if str(form.get(name) or "").strip()
    }


@router.post("/dashboard/devices/whatsapp")
async def add_whatsapp_line(
    principal: Poster, request: Request, session: DbSession, settings: AppSettings
) -> Response:
    form = await request.form()
    values: dict[str, Any] = _given(form, ("name", "provider", *WHATSAPP_KEYS))
    try:
        body = whatsapp.WhatsAppIn.model_validate(values)
        device, issued = await whatsapp.create_line(session, principal.account_id, body, settings)
    except (ValidationError, ApiError) as exc:
        message = _sentence(exc)
        found = await devices.list_devices(session, principal.account_id)
        return _page(
            request,
            "devices.html",
            principal,
            status=400,
            page="devices",
            title="Devices",
            devices=[devices.device_out(d) for d in found],
            whatsapp_error=message,
        )
    pairing = devices.pairing_out(issued) if issued else None
    return await _device_page(request, session, principal, device.id, pairing=pairing)


@router.post("/dashboard/devices/{device_id}/whatsapp")
async def whatsapp_keys_form(
    principal: Poster, device_id: str, request: Request, session: DbSession, settings: AppSettings
) -> Response:
    form = await request.form()
    device = await devices.get_device(session, principal.account_id, device_id)
    try:
        patch = whatsapp.CloudCredentials.model_validate(_given(form, WHATSAPP_KEYS))
        whatsapp.set_credentials(device, patch, settings)
    except (ValidationError, ApiError) as exc:
        return await _device_page(request, session, principal, device_id, error=_sentence(exc))
    await session.flush()
    notice = translator(language(request))["saved"]
    return await _device_page(request, session, principal, device_id, notice=notice)


@router.post("/dashboard/devices/{device_id}/pairing")
async def new_pairing_form(
    principal: Poster,
    device_id: str,
    request: Request,
    session: DbSession,
    settings: AppSettings,
) -> Response:
    device = await devices.get_device(session, principal.account_id, device_id)
    devices.require_pairable(device)
    pairing = devices.pairing_out(devices.issue_pairing(device, settings))
    await session.flush()
    return await _device_page(request, session, principal, device_id, pairing=pairing)


@router.post("/dashboard/devices/{device_id}/delete")
async def delete_device_form(
    principal: Poster,
    device_id: str,
    request: Request,
    session: DbSession,
    confirm: Annotated[str, Form()] = "",
) -> Response:
    if confirm != "yes":
        return await _device_page(
            request, session, principal, device_id, error=t("tick the box to confirm")
        )
    await removal.delete_device(session, request.app.state.hub, principal.account_id, device_id)
    return RedirectResponse("/dashboard/devices?done=device_deleted", status_code=303)


@router.get("/dashboard/account")
async def account_page(request: Request, session: ReadSession) -> Response:
    principal = await _viewer(request, session)
    account = await accounts.get_account(session, principal.account_id)
    return _account_page(request, principal, account)


def _account_page(request: Request, principal: Principal, account: Any, **shown: Any) -> Response:
    """The account page (e-mail, password form, sending preferences) with a form's outcome."""
    return _page(
        request,
        "account.html",
        principal,
        page="account_title",
        title="Account",
        email=account.email,
        prefs=settings_out(account),
        zones=sorted({*preferences.DEFAULT_ZONES.values(), "UTC"}),
        **shown,
    )


@router.post("/dashboard/account/settings")
async def account_settings_form(
    principal: Poster,
    request: Request,
    session: DbSession,
    reroute_stalled: Annotated[str | None, Form(alias="rerouteStalled", max_length=8)] = None,
    bypass: Annotated[str | None, Form(alias="optOutBypassExpedited", max_length=8)] = None,
    time_zone: Annotated[str | None, Form(alias="timeZone", max_length=64)] = None,
    countries: Annotated[str | None, Form(alias="allowedCountries", max_length=1000)] = None,
) -> Response:
    """The account's preferences (unchecked boxes are not sent: off; the countries as codes
    separated by commas or spaces)."""
    account = await accounts.get_account(session, principal.account_id)
    codes = None
    if countries is not None:
        codes = [c for c in countries.replace(",", " ").split() if c][:250]
    chosen = AccountSettingsPatch.model_validate(
        {
            "rerouteStalled": reroute_stalled is not None,
            "optOutBypassExpedited": bypass is not None,
            "timeZone": time_zone,
            "allowedCountries": codes,
        }
    )
    try:
        await change_settings(session, account, chosen)
    except ApiError as exc:  # refused before anything changed
        return _account_page(request, principal, account, error=_sentence(exc))
    # this page already shows the new zone (the credential cache forgets the old after commit)
    principal = replace(principal, time_zone=preferences.time_zone_of(account))
    return _account_page(request, principal, account, notice=translator(language(request))["saved"])


@router.post("/dashboard/account/password")
async def password_form(
    principal: Poster,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    current: Annotated[str, Form(max_length=1024)] = "",
    new: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    account = await accounts.get_account(session, principal.account_id)
    notice = error = None
    try:
        await accounts.change_password(
            session, account, current, new, principal.credential_id, settings
        )
        notice = translator(language(request))["password_changed"]
    except ApiError as exc:
        error = _sentence(exc)
    return _account_page(
        request, principal, account, notice=notice, error=error, status=200 if notice else 400
    )


# the campaigns, contacts, templates and opt-out pages (dashboard/campaign_pages.py)
router.routes.extend(campaign_pages.router.routes)
