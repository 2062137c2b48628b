"""The mobile API at /api/mobile/v1, as the "SMS Gateway for Android" app speaks it.

Traps this file keeps to (see shared/docs/android-app-protocol.md): 401 only for an unknown or
revoked device token (the app re-registers on any 401 to PATCH /device); bare JSON arrays for
messages; absent rather than null fields; times with a zone and three fractional digits; a
settings object without null sections and without `gateway.*`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from smsgate.accounts import service as accounts
from smsgate.accounts.auth import AppSettings
from smsgate.devices import pairing as pairings
from smsgate.devices import presence
from smsgate.devices import service as devices
from smsgate.devices import settings as device_settings
from smsgate.devices.auth import DeviceAuth, DeviceOnItsOwn, unauthorized
from smsgate.devices.models import Device
from smsgate.errors import ApiError
from smsgate.kit import clock
from smsgate.kit.crypto import equal
from smsgate.kit.i18n import t
from smsgate.kit.responses import JSONResponse, api_router
from smsgate.kit.schema import json_body, parse_json
from smsgate.messages import inbound, queue, reports
from smsgate.mobile import bodies
from smsgate.notify.hub import END_STREAM, Hub
from smsgate.storage.db import DbSession, ReadSession

router = api_router(prefix="/api/mobile/v1", tags=["mobile"])

SIGNATURE_TOLERANCE_SECONDS = 300
INGEST_EVENTS = (
    "sms:received",
    "sms:data-received",
    "mms:received",
    "mms:downloaded",
    "system:ping",
)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


MobileDevice = DeviceAuth


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


# --- registration ---------------------------------------------------------------------------


@router.post("/device", status_code=201, openapi_extra=bodies.REGISTER)
async def register(request: Request, session: DbSession, settings: AppSettings) -> JSONResponse:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, t("request body must be a JSON object"), "validation_error")
    scheme, _, credential = request.headers.get("authorization", "").strip().partition(" ")
    credential = credential.strip()
    agent = request.headers.get("user-agent")
    kind = scheme.lower()
    result: tuple[Device, str] | None = None
    shared = settings.mobile_registration_token
    anonymous = (not shared and not kind) or (
        bool(shared) and kind == "bearer" and equal(credential, shared)
    )
    if settings.mobile_open_registration and anonymous:
        device, token, login, password = await pairings.register_anonymous(
            session, body, agent, settings
        )
        return JSONResponse(
            {"id": device.id, "token": token, "login": login, "password": password},
            status_code=201,
        )
    if kind in ("bearer", "code") and credential:
        result = await pairings.pair(
            session, kind, credential, body, agent, _client(request), settings
        )
    elif kind == "basic" and credential:
        email, password = _basic(credential)
        account = await accounts.login(
            session, email=email, password=password, client=_client(request), settings=settings
        )
        result = await pairings.add_registered_device(session, account.id, body, agent, settings)
    else:
        raise unauthorized(
            t(
                "registration needs the pairing token (Private Token), a pairing or login code, "
                "or the account's email and password"
            )
        )
    if result is None:
        raise unauthorized(t("this pairing token or code is unknown, used or expired"))
    device, token = result
    account = await accounts.get_account(session, device.account_id)
    await session.flush()
    return JSONResponse({"id": device.id, "token": token, "login": account.email}, status_code=201)


def _basic(credential: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(credential, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise unauthorized(t("malformed Basic credentials")) from exc
    email, sep, password = decoded.partition(":")
    if not sep:
        raise unauthorized(t("malformed Basic credentials"))
    return email, password


@router.patch("/device", status_code=204, openapi_extra=bodies.UPDATE)
async def update_device(request: Request, device: MobileDevice) -> Response:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, t("request body must be a JSON object"), "validation_error")
    if body.get("id") not in (None, device.id):
        raise ApiError(403, t("this token belongs to another device"), "forbidden")
    pairings.apply_declared(device, body, request.headers.get("user-agent"), registering=False)
    return Response(status_code=204)


@router.get("/device")
async def device_info(request: Request, session: ReadSession) -> dict[str, Any]:
    """Public: the app asks for its external address even when unauthenticated."""
    out: dict[str, Any] = {"externalIp": _client(request)}
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        device = await devices.device_by_token(session, token.strip())
        if device is not None:
            out["device"] = {"id": device.id, "name": device.name}
    return out


# --- messages -------------------------------------------------------------------------------


@router.get("/message")
@router.get("/messages", include_in_schema=False)
async def pull_messages(
    device: MobileDevice, session: DbSession, order: str = "lifo"
) -> JSONResponse:
    order = order.lower()
    if order not in ("lifo", "fifo"):
        raise ApiError(400, t('order: must be "lifo" or "fifo"'), "validation_error")
    return JSONResponse(await queue.pull(session, device, order))


@router.patch("/message", status_code=204, openapi_extra=bodies.REPORTS)
@router.patch("/messages", status_code=204, include_in_schema=False)
async def report_states(request: Request, device: DeviceOnItsOwn) -> Response:
    """The reports are written in a batch's transaction (reports.report_batch)."""
    body = await json_body(request)
    items = body if isinstance(body, list) else [body] if isinstance(body, dict) else []
    given = reports.reports_of(device, items)
    if given:
        await request.app.state.reports.submit(given)
    return Response(status_code=204)


# --- wake-ups -------------------------------------------------------------------------------


@router.get("/events")
async def events(
    request: Request, device: MobileDevice, settings: AppSettings
) -> StreamingResponse:
    hub = _hub(request)
    subscription = hub.subscribe(device.id, device.account_id)
    keepalive = settings.sse_keepalive_seconds

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b":connected\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(subscription.queue.get(), keepalive)
                except TimeoutError:
                    yield b":keepalive\n\n"
                    continue
                if event.name == END_STREAM:  # shutting down, or the device was deleted
                    return
                yield event.frame()
        finally:
            hub.unsubscribe(subscription)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# --- settings and webhooks ------------------------------------------------------------------


@router.get("/settings")
async def app_settings(device: MobileDevice, settings: AppSettings) -> dict[str, Any]:
    return device_settings.app_sections(
        device.settings or {}, devices.signing_key(device, settings)
    )


@router.get("/webhooks")
async def app_webhooks(device: MobileDevice, settings: AppSettings) -> list[dict[str, str]]:
    """The server's own ingest URL for what the app reports only as webhooks (received messages,
    pings); the phone signs each delivery with the signing key from GET /settings."""
    url = f"{settings.public_url}/api/mobile/v1/ingest/{device.id}"
    return [
        {"id": f"smsgate-{event.replace(':', '-')}", "url": url, "event": event}
        for event in INGEST_EVENTS
    ]


@router.post("/ingest/{device_id}", status_code=204, include_in_schema=False)
async def ingest(
    device_id: str, request: Request, session: DbSession, settings: AppSettings
) -> Response:
    """A webhook the phone delivers to us: verify its signature, then record it once."""
    raw = await request.body()
    device = await devices.find_device(session, device_id)
    if device is None or device.token_hash is None:
        raise ApiError(404, t("device not found"), "not_found")
    stamp = request.headers.get("x-timestamp", "")
    given = request.headers.get("x-signature", "")
    key = devices.signing_key(device, settings).encode()
    expected = hmac.new(key, raw + stamp.encode(), hashlib.sha256).hexdigest()
    if not key or not hmac.compare_digest(expected, given.lower()):
        raise ApiError(401, t("bad X-Signature for this device"), "bad_signature")
    try:
        skew = abs(time.time() - int(stamp))
    except ValueError as exc:
        raise ApiError(401, t("X-Timestamp must be Unix seconds"), "bad_signature") from exc
    if skew > SIGNATURE_TOLERANCE_SECONDS:
        raise ApiError(401, t("X-Timestamp is too far from now"), "bad_signature")
    envelope = parse_json(raw)
    await presence.mark_seen(session, device)
    if isinstance(envelope, dict):
        await inbound.from_app_webhook(session, device, envelope, settings)
    return Response(status_code=204)


# --- our own agents' extensions -------------------------------------------------------------


@router.post("/inbox", status_code=202, openapi_extra=bodies.INBOX)
async def post_inbox(
    request: Request, device: MobileDevice, session: DbSession, settings: AppSettings
) -> dict[str, Any]:
    """Extension for our simulator and bridges: received messages, recorded once each."""
    body = await json_body(request)
    items = body.get("messages") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise ApiError(400, t("messages: must be a list"), "validation_error")
    ids = [
        await inbound.from_agent(session, device, item, index, settings)
        for index, item in enumerate(items)
    ]
    return {"ids": ids}


@router.post("/logs", status_code=202, openapi_extra=bodies.LOGS)
async def post_logs(request: Request, device: MobileDevice, session: DbSession) -> dict[str, int]:
    """Extension: log lines a device wants its owner to see."""
    body = await json_body(request)
    items = body if isinstance(body, list) else []
    accepted = 0
    for item in items[:100]:
        if not isinstance(item, dict) or not isinstance(item.get("message"), str):
            continue
        level = item.get("level") if item.get("level") in devices.LOG_LEVELS else "info"
        devices.log(session, device, "device", item["message"], level=str(level))
        accepted += 1
    return {"accepted": accepted}


# --- account calls --------------------------------------------------------------------------


@router.get("/user/code")
async def login_code(request: Request, session: DbSession, settings: AppSettings) -> dict[str, Any]:
    scheme, _, credential = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "basic":
        raise unauthorized(t("send the account's email and password as Basic credentials"))
    email, password = _basic(credential.strip())
    account = await accounts.login(
        session, email=email, password=password, client=_client(request), settings=settings
    )
    code, expires = await pairings.issue_login_code(session, account.id)
    return {"code": code, "validUntil": clock.iso(expires)}


@router.patch("/user/password", status_code=204, openapi_extra=bodies.PASSWORD)
async def change_password(
    request: Request, device: MobileDevice, session: DbSession, settings: AppSettings
) -> Response:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, t("request body must be a JSON object"), "validation_error")
    current, new = body.get("currentPassword"), body.get("newPassword")
    if not isinstance(current, str) or not isinstance(new, str):
        raise ApiError(400, t("currentPassword and newPassword are required"), "validation_error")
    account = await accounts.get_account(session, device.account_id)
    try:
        await accounts.change_password(session, account, current, new, None, settings)
    except ApiError as exc:
        if exc.code == "invalid_credentials":  # the app's wording for it, still counted
            raise ApiError(401, exc.message, exc.code, keep_changes=True) from exc
        raise
    return Response(status_code=204)
