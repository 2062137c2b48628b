"""/api/3rdparty/v1 as the ecosystem's clients (the PyPI `android-sms-gateway` SDK and others)
call it: a thin adapter over our own services, no second copy of any rule.

Differences kept on purpose: a client-chosen message `id` is our `externalId` (so repeating a
send is safe), and states are derived from ours (processing → Pending before a phone takes the
message, Processed after).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func, select

from smsgate import __version__
from smsgate.accounts import cache, scopes
from smsgate.accounts import service as accounts
from smsgate.accounts.auth import current_principal
from smsgate.accounts.service import Principal
from smsgate.compat import bodies
from smsgate.config import Settings
from smsgate.devices import removal
from smsgate.devices import service as devices
from smsgate.devices import settings as device_settings
from smsgate.devices.models import Device, DeviceLog
from smsgate.errors import ApiError, bad_request
from smsgate.kit import clock, schema
from smsgate.kit.i18n import t
from smsgate.kit.ids import is_id
from smsgate.kit.responses import JSONResponse, api_router, serve_lean
from smsgate.messages import service as messages
from smsgate.messages import states
from smsgate.messages.dispatch import APP_STATES
from smsgate.messages.models import (
    created_between,
    history_table,
    messages_table,
    recipients_table,
)
from smsgate.messages.schemas import Row, SendRequest
from smsgate.notify.hub import MESSAGE_CANCELLED, SETTINGS_UPDATED, Event, Hub
from smsgate.ops.health import database_state
from smsgate.storage.db import Database, DbSession, ReadSession, after_commit
from smsgate.webhooks import service as webhooks
from smsgate.webhooks.models import Webhook

router = api_router(prefix="/api/3rdparty/v1", tags=["compat"])

# Their scopes onto ours.
# bounds of numeric query parameters: past them a value means nothing (and would overflow the
# database's integers or the calendar)
MAX_OFFSET = 2**31 - 1
MAX_ACTIVE_WITHIN_HOURS = 10 * 366 * 24
SCOPES = {
    "messages:send": scopes.SEND,
    "messages:cancel": scopes.SEND,
    "messages:read": scopes.READ_MESSAGES,
    "messages:list": scopes.READ_MESSAGES,
    "messages:export": scopes.READ_MESSAGES,
    "inbox:list": scopes.READ_MESSAGES,
    "inbox:refresh": scopes.READ_MESSAGES,
    "devices:list": scopes.DEVICES,
    "devices:delete": scopes.DEVICES,
    "settings:read": scopes.DEVICES,
    "settings:write": scopes.DEVICES,
    "logs:read": scopes.DEVICES,
    "webhooks:list": scopes.WEBHOOKS,
    "webhooks:write": scopes.WEBHOOKS,
    "webhooks:delete": scopes.WEBHOOKS,
    "tokens:manage": scopes.KEYS,
}


async def _basic_principal(request: Request, credential: str) -> Principal:
    try:
        raw = base64.b64decode(credential, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(401, t("malformed Basic credentials"), "unauthorized") from exc
    try:
        decoded = raw.decode()
    except UnicodeDecodeError:
        # RFC 7617 leaves the charset to the client: browsers and JavaScript's btoa (the npm
        # SDK) send ISO-8859-1, which decodes any bytes
        decoded = raw.decode("latin-1")
    email, _, password = decoded.partition(":")

    async def load() -> Principal | None:
        database: Database = request.app.state.db
        settings: Settings = request.app.state.settings
        client = request.client.host if request.client else "unknown"
        async with database.sessions() as session:
            try:
                principal = await accounts.principal_from_password(
                    session, email=email, password=password, client=client, settings=settings
                )
            except ApiError:
                await session.commit()  # count the failure
                raise
            await session.commit()
        return principal

    principal = await cache.passwords.get_or_load(credential, load)
    assert principal is not None
    return principal


async def compat_principal(request: Request) -> Principal:
    """Basic (email and password) or Bearer (at_ tokens and sk_ keys)."""
    scheme, _, credential = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "basic" and credential.strip():
        principal = await _basic_principal(request, credential.strip())
        request.state.principal = principal
        return principal
    if scheme.lower() != "bearer":
        raise ApiError(401, t("send Basic email:password or a Bearer token"), "unauthorized")
    return await current_principal(request)


Caller = Annotated[Principal, Depends(compat_principal)]


async def _object(request: Request) -> dict[str, Any]:
    body = schema.parse_json(await request.body())
    if not isinstance(body, dict):
        raise bad_request(t("request body must be a JSON object"))
    return body


def _need(principal: Principal, their_scope: str) -> None:
    if SCOPES[their_scope] not in principal.scopes:
        raise ApiError(
            403, t("scope required: {their_scope}", their_scope=their_scope), "insufficient_scope"
        )


# --- health ---------------------------------------------------------------------------------


async def _health(request: Request) -> JSONResponse:
    started = clock.now()
    ok = (await database_state(request.app.state.db)).reachable  # bounded: never hangs
    took = int((clock.now() - started).total_seconds() * 1000)
    body = {
        "status": "pass" if ok else "fail",
        "version": __version__,
        "releaseId": 1,
        "checks": {
            "db:ping": {
                "status": "pass" if ok else "fail",
                "observedValue": took,
                "observedUnit": "ms",
                "description": "database round trip",
            }
        },
    }
    return JSONResponse(body, status_code=200 if ok else 503)


for _path in ("/health", "/health/live", "/health/ready", "/health/startup"):
    router.add_api_route(_path, _health, methods=["GET"], include_in_schema=_path == "/health")


# --- messages -------------------------------------------------------------------------------


def _their_state(state: str, handed: bool, cancelling: bool) -> str:
    if state == states.PROCESSING:
        if cancelling:
            return "Cancelling"
        return "Processed" if handed else "Pending"
    return {
        states.SENT: "Sent",
        states.DELIVERED: "Delivered",
        states.FAILED: "Failed",
        states.CANCELLED: "Cancelled",
        states.RECEIVED: "Delivered",
    }[state]


async def _state_of(session: DbSession, row: Row, include_content: bool = False) -> dict[str, Any]:
    return (await _states_of(session, [row], include_content))[0]


async def _states_of(
    session: DbSession, rows: Sequence[Row], include_content: bool = False
) -> list[dict[str, Any]]:
    """The MessageStates of a page of messages: two queries for the whole page."""
    if not rows:
        return []
    r, h = recipients_table, history_table
    ids = [row["id"] for row in rows]
    recipients: dict[str, list[Row]] = {i: [] for i in ids}
    found = await session.execute(
        select(r).where(r.c.message_id.in_(ids)).order_by(r.c.message_id, r.c.position)
    )
    for recipient in found.mappings():
        recipients[recipient["message_id"]].append(recipient)
    history: dict[str, list[tuple[str, datetime]]] = {i: [] for i in ids}
    changes = await session.execute(
        select(h.c.message_id, h.c.state, h.c.created_at)
        .where(h.c.message_id.in_(ids), h.c.phone_number.is_(None))
        .order_by(h.c.id)
    )
    for message_id, state, at in changes.all():
        history[message_id].append((state, at))
    return [_state(row, recipients[row["id"]], history[row["id"]], include_content) for row in rows]


def _state(
    row: Row,
    recipients: Sequence[Row],
    history: Sequence[tuple[str, datetime]],
    include_content: bool = False,
) -> dict[str, Any]:
    """The reference's MessageState of a message, its recipients and its own (not per-recipient)
    state history."""
    handed = row["handed_at"] is not None
    cancelling = row["cancel_requested_at"] is not None
    stamps = {"Pending": clock.iso(row["created_at"])}
    if row["handed_at"]:
        stamps["Processed"] = clock.iso(row["handed_at"])
    for state, at in history:
        if state != states.PROCESSING:
            stamps[_their_state(state, True, False)] = clock.iso(at)
    out: dict[str, Any] = {
        "id": row["external_id"] or row["id"],
        "deviceId": row["assigned_device_id"] or row["device_id"] or "",
        "state": _their_state(row["state"], handed, cancelling),
        "isHashed": False,
        "isEncrypted": bool(row["is_encrypted"]),
        "recipients": [
            {
                "phoneNumber": rec["phone_number"],
                "state": _their_state(rec["state"], handed, cancelling),
                **({"error": rec["error"]} if rec["error"] else {}),
            }
            for rec in recipients
        ],
        "states": stamps,
        "createdAt": clock.iso(row["created_at"]),
    }
    if include_content:
        if row["channel"] == "data":
            out["dataMessage"] = {"data": row["content"], "port": row["data_port"]}
        else:
            out["textMessage"] = {"text": row["content"] or ""}
    return out


async def _find(session: DbSession, account_id: str, message_id: str) -> Row:
    """By our id, or by the id the client chose (our externalId)."""
    m = messages_table
    query = select(m).where(m.c.account_id == account_id, m.c.direction == "out")
    by_id = query.where(m.c.id == message_id) if is_id(message_id) else None
    row = (await session.execute(by_id)).mappings().first() if by_id is not None else None
    if row is None:
        row = (await session.execute(query.where(m.c.external_id == message_id))).mappings().first()
    if row is None:
        raise ApiError(404, t("message not found"), "not_found")
    return row


def _send_request(body: dict[str, Any]) -> SendRequest:
    contents = [k for k in ("message", "textMessage", "dataMessage", "mmsMessage") if body.get(k)]
    if len(contents) != 1:
        raise bad_request(t("give exactly one of message, textMessage and dataMessage"))
    fields: dict[str, Any] = {
        "phoneNumbers": body.get("phoneNumbers"),
        "priority": body.get("priority") or 0,
        "withDeliveryReport": body.get("withDeliveryReport", True),
        "isEncrypted": bool(body.get("isEncrypted", False)),
    }
    if contents[0] == "mmsMessage":
        raise bad_request(t("mmsMessage: MMS through this API is not supported; use /api/v1/send"))
    if contents[0] == "dataMessage":
        data = body["dataMessage"]
        if not isinstance(data, dict):
            raise bad_request(t("dataMessage: must be an object"))
        fields |= {"channel": "data", "message": data.get("data"), "port": data.get("port")}
    elif contents[0] == "textMessage":
        text = body["textMessage"]
        fields["message"] = text.get("text") if isinstance(text, dict) else None
    else:
        fields["message"] = body["message"]
    for theirs, ours in (
        ("id", "externalId"),
        ("deviceId", "deviceId"),
        ("simNumber", "simNumber"),
        ("ttl", "ttl"),
    ):
        if body.get(theirs) is not None:
            fields[ours] = body[theirs]
    for name in ("validUntil", "scheduleAt"):
        if body.get(name):
            fields[name] = _time(body, name)  # the Python client's zone-less times are UTC
    return schema.parse(SendRequest, fields)  # a wrong type is a 400 naming the field


class _SendQuery(BaseModel):
    """The send's query parameters, read by hand (the route is served lean)."""

    skipPhoneValidation: bool = False
    deviceActiveWithin: int = Field(default=0, ge=0, le=MAX_ACTIVE_WITHIN_HOURS)


# as FastAPI would describe them from the parameters' declarations
_SEND_PARAMETERS = [
    {"name": name, "in": "query", "required": False, "schema": field}
    for name, field in _SendQuery.model_json_schema()["properties"].items()
]


def _send_query(request: Request) -> _SendQuery:
    try:
        return _SendQuery.model_validate(dict(request.query_params))
    except ValidationError as exc:  # answered as FastAPI's own check of them would be
        errors = [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from exc


def _created_between(from_: datetime | None, to: datetime | None) -> list[Any]:
    return created_between(
        None if from_ is None else clock.as_utc(from_), None if to is None else clock.as_utc(to)
    )


@router.post(
    "/messages", status_code=202, openapi_extra={**bodies.MESSAGE, "parameters": _SEND_PARAMETERS}
)
@router.post("/message", status_code=202, include_in_schema=False)
async def send(request: Request) -> JSONResponse:
    # Served lean (kit/responses.serve_lean): the caller and the query are read here, in the
    # order FastAPI's dependency solving took them. No request-wide session: the send path has
    # its own transactions, and a database session is opened only for what needs one (a device
    # to choose, a replay to read).
    principal = await compat_principal(request)
    query = _send_query(request)
    skipPhoneValidation, deviceActiveWithin = query.skipPhoneValidation, query.deviceActiveWithin
    database: Database = request.app.state.db
    _need(principal, "messages:send")
    body = await _object(request)
    send_request = _send_request(body)
    if deviceActiveWithin and send_request.device_id is None:
        # as the reference: a random one of the devices seen within that many hours
        since = clock.now() - timedelta(hours=deviceActiveWithin)
        async with database.transaction() as session:
            found = await devices.list_devices(session, principal.account_id)
        active = [d.id for d in found if d.last_seen_at is not None and d.last_seen_at >= since]
        if not active:
            raise bad_request(
                t("no device was active within {hours} hours", hours=deviceActiveWithin)
            )
        send_request = send_request.model_copy(update={"device_id": secrets.choice(active)})
    stored = await messages.store_message(
        database,
        request.app.state.send_writer,
        principal,
        send_request,
        validate_numbers=not skipPhoneValidation,
    )
    messages.announce(request.app.state.hub, principal.account_id, send_request, stored.created)
    if stored.created:
        # just written, and answered from what was written: its only history line is its
        # creation (processing), which the reference's states leave out
        state = _state(stored.row, stored.recipients, [])
    else:  # a replay of its id: the original, as the writer read it in this batch
        async with database.transaction() as session:
            state = await _state_of(session, stored.row)
    return JSONResponse(
        state,
        status_code=202,
        # the id may be the client's own, in any script: percent-encoded, as a URL path is
        headers={"Location": f"/api/3rdparty/v1/messages/{quote(state['id'], safe='')}"},
    )


serve_lean(router, send)


@router.get("/messages/{message_id}")
@router.get("/message/{message_id}", include_in_schema=False)
async def get_state(
    message_id: str,
    principal: Caller,
    session: ReadSession,
    includeContent: bool = False,
) -> dict[str, Any]:
    _need(principal, "messages:read")
    row = await _find(session, principal.account_id, message_id)
    return await _state_of(session, row, includeContent)


@router.get("/messages")
@router.get("/message", include_in_schema=False)
async def list_messages(
    principal: Caller,
    session: ReadSession,
    response: Response,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    state: str | None = None,
    deviceId: str | None = None,
    limit: Annotated[int, Query(ge=1)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    includeContent: bool = False,
    sort: str = "-created_at",
) -> list[dict[str, Any]]:
    _need(principal, "messages:list")
    if sort not in ("created_at", "-created_at"):
        raise bad_request(t('sort: must be "created_at" or "-created_at"'), field="sort")
    m = messages_table
    query = select(m).where(m.c.account_id == principal.account_id, m.c.direction == "out")
    query = query.where(*_created_between(from_, to))
    if deviceId:
        query = query.where((m.c.assigned_device_id == deviceId) | (m.c.device_id == deviceId))
    if state:
        ours = APP_STATES.get(state)
        if ours is None:
            raise bad_request(t('state: unknown state "{state}"', state=state), field="state")
        query = query.where(m.c.state == ours)
        if state == "Pending":
            query = query.where(m.c.handed_at.is_(None))
        elif state == "Processed":
            query = query.where(m.c.handed_at.is_not(None))
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    order = m.c.id.asc() if sort == "created_at" else m.c.id.desc()
    rows = (
        (await session.execute(query.order_by(order).limit(min(limit, 100)).offset(offset)))
        .mappings()
        .all()
    )
    response.headers["X-Total-Count"] = str(total)
    return await _states_of(session, rows, includeContent)


@router.delete("/messages/{message_id}")
@router.delete("/message/{message_id}", include_in_schema=False)
async def cancel(
    message_id: str, request: Request, principal: Caller, session: DbSession
) -> dict[str, Any]:
    _need(principal, "messages:cancel")
    row = await _find(session, principal.account_id, message_id)
    try:
        _, device_id = await messages.cancel_message(session, principal.account_id, row["id"])
    except ApiError as exc:
        if exc.code == "not_cancellable":
            raise ApiError(409, t("message is not pending"), "not_cancellable") from exc
        raise
    if device_id is not None:  # the phone hears of it once the cancel is committed
        hub: Hub = request.app.state.hub
        event = Event(MESSAGE_CANCELLED, {"messageId": row["id"]})
        after_commit(session, partial(hub.publish, principal.account_id, device_id, event))
    fresh = await _find(session, principal.account_id, row["id"])
    return await _state_of(session, fresh)


# --- devices --------------------------------------------------------------------------------


def _device(device: Device) -> dict[str, Any]:
    return {
        "id": device.id,
        "name": device.name,
        "createdAt": clock.iso(device.created_at),
        "updatedAt": clock.iso(device.last_seen_at or device.paired_at or device.created_at),
        "lastSeen": clock.iso(device.last_seen_at or device.paired_at or device.created_at),
        "simCards": device.sim_cards or [],
    }


def _phones(found: Sequence[Device]) -> list[Device]:
    """The devices this API speaks of, as the reference has them: phones that registered (a
    phone waiting to be paired has never been seen; a WhatsApp line has no phone settings)."""
    return [d for d in found if d.type == "android" and d.paired_at is not None]


@router.get("/devices")
@router.get("/device", include_in_schema=False)
async def list_devices(principal: Caller, session: ReadSession) -> list[dict[str, Any]]:
    _need(principal, "devices:list")
    return [_device(d) for d in _phones(await devices.list_devices(session, principal.account_id))]


@router.delete("/devices/{device_id}", status_code=204)
async def remove_device(
    device_id: str, request: Request, principal: Caller, session: DbSession
) -> Response:
    """204 even for an unknown id, as the reference answers."""
    _need(principal, "devices:delete")
    try:
        await removal.delete_device(session, request.app.state.hub, principal.account_id, device_id)
    except ApiError as exc:
        if exc.status != 404:
            raise
    return Response(status_code=204)


# --- tokens ---------------------------------------------------------------------------------


def _token_out(pair: accounts.TokenPair) -> dict[str, Any]:
    """Both spellings: the reference and client-go read snake_case, the PyPI client camelCase."""
    expires = clock.iso(pair.expires_at)
    return {
        "id": pair.family_id,
        "token_type": "Bearer",
        "tokenType": "Bearer",
        "access_token": pair.access_token,
        "accessToken": pair.access_token,
        "refresh_token": pair.refresh_token,
        "refreshToken": pair.refresh_token,
        "expires_at": expires,
        "expiresAt": expires,
    }


@router.post("/auth/token", status_code=201, openapi_extra=bodies.token(SCOPES))
async def issue_token(request: Request, principal: Caller, session: DbSession) -> dict[str, Any]:
    _need(principal, "tokens:manage")
    body = await _object(request)
    requested = body.get("scopes")
    if not isinstance(requested, list) or not requested:
        raise bad_request(t("scopes: give at least one scope"), field="scopes")
    if not all(isinstance(s, str) for s in requested):
        raise bad_request(t("scopes: a list of scope names (strings)"), "invalid_scope", "scopes")
    unknown = [s for s in requested if s not in SCOPES]
    if unknown:
        raise bad_request(
            t("scopes: unknown scope {scope}", scope=unknown[0]), "invalid_scope", "scopes"
        )
    chosen = frozenset(SCOPES[s] for s in requested) & principal.scopes
    settings: Settings = request.app.state.settings
    ttl = body.get("ttl") if isinstance(body.get("ttl"), int) else 0
    ttl = min(max(ttl, 60), settings.access_token_ttl_seconds) if ttl else None
    account = await accounts.get_account(session, principal.account_id)
    pair = await accounts.issue_tokens(session, account, settings, chosen=chosen, ttl=ttl)
    return _token_out(pair)


@router.post("/auth/token/refresh", status_code=201)
async def refresh_token(request: Request, session: DbSession) -> dict[str, Any]:
    """Bearer <refresh token>; the presented token stops working (rotation)."""
    scheme, _, raw = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise ApiError(401, t("send the refresh token as Authorization: Bearer"), "unauthorized")
    settings: Settings = request.app.state.settings
    pair = await accounts.refresh_tokens(session, raw.strip(), settings)
    return _token_out(pair)


@router.delete("/auth/token/{token_id}", status_code=204)
async def revoke_token(token_id: str, principal: Caller, session: DbSession) -> Response:
    _need(principal, "tokens:manage")
    try:
        await accounts.revoke_family_by_id(session, principal.account_id, token_id)
    except ApiError as exc:
        if exc.status != 404:
            raise
    return Response(status_code=204)


# --- webhooks -------------------------------------------------------------------------------

# Their events that SMSGate emits under the same name; the others are refused with a reason.
WEBHOOK_EVENTS = (
    "sms:received",
    "sms:sent",
    "sms:delivered",
    "sms:failed",
    "system:ping",
    "mms:received",
    "mms:downloaded",
)


def _webhook_rows(hook: Webhook) -> list[dict[str, Any]]:
    return [
        {
            "id": hook.client_id or hook.id,
            "url": hook.url,
            "event": event,
            "deviceId": hook.device_id,  # null when it serves every device, as the reference
        }
        for event in hook.events
        if event in WEBHOOK_EVENTS
    ]


async def _hook_by(session: DbSession, account_id: str, hook_id: str) -> Webhook | None:
    query = select(Webhook).where(Webhook.account_id == account_id)
    found = (await session.execute(query.where(Webhook.client_id == hook_id))).scalar()
    if found is None and is_id(hook_id):
        found = (await session.execute(query.where(Webhook.id == hook_id))).scalar()
    return found


@router.get("/webhooks")
async def list_webhooks(principal: Caller, session: ReadSession) -> list[dict[str, Any]]:
    _need(principal, "webhooks:list")
    hooks = await webhooks.list_all(session, principal.account_id)
    return [row for hook in hooks for row in _webhook_rows(hook)]


@router.post("/webhooks", status_code=201, openapi_extra=bodies.webhook(WEBHOOK_EVENTS))
async def upsert_webhook(request: Request, principal: Caller, session: DbSession) -> dict[str, Any]:
    """Created, or replaced when the client's id already exists; deliveries use the Android
    app's own envelope and X-Signature scheme (format `android`), which their receivers know."""
    _need(principal, "webhooks:write")
    body = await _object(request)
    url, event = body.get("url"), body.get("event")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise bad_request(t("url: must start with https://"), field="url")
    if event not in WEBHOOK_EVENTS:
        raise bad_request(
            t(
                'event: "{event}" is not one SMSGate sends; use one of {value}',
                event=event,
                value=", ".join(WEBHOOK_EVENTS),
            ),
            field="event",
        )
    client_id = body.get("id")
    if client_id is not None and (not isinstance(client_id, str) or not 0 < len(client_id) <= 36):
        raise bad_request(t("id: must be a string of 1 to 36 characters"), field="id")
    device_id = _device_id(body)
    settings: Settings = request.app.state.settings
    existing = await _hook_by(session, principal.account_id, client_id) if client_id else None
    if existing is None:
        hook, _ = await webhooks.create(
            session,
            principal.account_id,
            settings,
            url=url,
            events=[event],
            device_id=device_id,
            fmt="android",
        )
        hook.client_id = client_id
    else:
        hook = existing
        hook.url = await webhooks.check_url(url, settings)
        hook.events = [event]
        if device_id is not None:
            await devices.get_device(session, principal.account_id, device_id)
        hook.device_id = device_id
        hook.updated_at = clock.now()
    await session.flush()
    return _webhook_rows(hook)[0]


@router.delete("/webhooks/{hook_id}", status_code=204)
async def delete_webhook(hook_id: str, principal: Caller, session: DbSession) -> Response:
    _need(principal, "webhooks:delete")
    hook = await _hook_by(session, principal.account_id, hook_id)
    if hook is not None:
        await session.delete(hook)
    return Response(status_code=204)


# --- inbox and logs -------------------------------------------------------------------------

INBOX_TYPES = {"sms": "SMS", "data": "DATA_SMS", "mms": "MMS", "whatsapp": "SMS"}


@router.get("/inbox")
async def inbox(
    principal: Caller,
    session: ReadSession,
    response: Response,
    type_: Annotated[str | None, Query(alias="type")] = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    deviceId: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[dict[str, Any]]:
    _need(principal, "inbox:list")
    m, r = messages_table, recipients_table
    query = select(m).where(m.c.account_id == principal.account_id, m.c.direction == "in")
    if type_:
        channels = [c for c, t in INBOX_TYPES.items() if t == type_]
        if not channels:
            raise bad_request(t('type: unknown type "{type}"', type=type_), field="type")
        query = query.where(m.c.channel.in_(channels))
    query = query.where(*_created_between(from_, to))
    if deviceId:
        query = query.where(m.c.device_id == deviceId)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = (
        (await session.execute(query.order_by(m.c.id.desc()).limit(limit).offset(offset)))
        .mappings()
        .all()
    )
    senders = {}
    if rows:
        found = await session.execute(
            select(r.c.message_id, r.c.phone_number).where(
                r.c.message_id.in_([row["id"] for row in rows])
            )
        )
        senders = dict(found.all())
    response.headers["X-Total-Count"] = str(total)
    return [
        {
            "id": row["id"],
            "type": INBOX_TYPES.get(row["channel"], "SMS"),
            "sender": senders.get(row["id"], ""),
            "contentPreview": (row["content"] or "")[:160],
            "createdAt": clock.iso(row["created_at"]),
            **({"simNumber": row["sim_number"]} if row["sim_number"] else {}),
        }
        for row in rows
    ]


def _device_id(body: dict[str, Any]) -> str | None:
    """A body's optional deviceId; a 400 when it is not a string."""
    device_id = body.get("deviceId")
    if device_id is not None and not isinstance(device_id, str):
        raise bad_request(t("deviceId: must be a device id (a string)"), field="deviceId")
    return device_id


def _time(body: dict[str, Any], name: str) -> datetime:
    """A time of a body, in UTC (a zone-less one is UTC: the Python client writes those); a 400
    naming the field when it is missing or not a time."""
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise bad_request(t("{name}: give an RFC 3339 time", name=name), field=name)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad_request(
            t('{name}: "{value}" is not an RFC 3339 time', name=name, value=value[:40]), field=name
        ) from exc
    return clock.as_utc(parsed)


async def _export(request: Request, principal: Principal, session: DbSession) -> None:
    """Ask the account's phones (or one) to re-read their inbox and report it again."""
    body = await _object(request)
    since, until = _time(body, "since"), _time(body, "until")
    if until <= since:
        raise bad_request(t("until: must be after since"), field="until")
    device_id = _device_id(body)
    if device_id:
        await devices.get_device(session, principal.account_id, device_id)
    types = body.get("messageTypes") or ["SMS"]
    if not isinstance(types, list) or not all(t in bodies.INCOMING_TYPES for t in types):
        raise bad_request(
            t("messageTypes: a list of {value}", value=", ".join(bodies.INCOMING_TYPES)),
            field="messageTypes",
        )
    quiet = body.get("webhookDelivery") == "Disabled" or body.get("triggerWebhooks") is False
    data = {  # as the app reads them: RFC 3339 times, a comma list, "true" or "false"
        "since": str(clock.iso(since)),
        "until": str(clock.iso(until)),
        "messageTypes": ",".join(types),
        "triggerWebhooks": "false" if quiet else "true",
    }
    hub: Hub = request.app.state.hub
    hub.publish(principal.account_id, device_id, Event("MessagesExportRequested", data))


@router.post(
    "/inbox/refresh",
    status_code=202,
    response_class=Response,  # an empty answer
    openapi_extra=bodies.INBOX_REFRESH,
)
@router.post("/inbox/export", status_code=202, include_in_schema=False)
async def refresh_inbox(request: Request, principal: Caller, session: DbSession) -> Response:
    _need(principal, "inbox:refresh")
    await _export(request, principal, session)
    return Response(status_code=202)


@router.post("/messages/inbox/export", status_code=202, include_in_schema=False)
async def export_inbox(request: Request, principal: Caller, session: DbSession) -> Response:
    _need(principal, "messages:export")
    await _export(request, principal, session)
    return Response(status_code=202, headers={"Deprecation": "true"})


LOG_PRIORITY = {"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR"}


def log_number(log_id: str) -> int:
    """A log entry's id as the reference API gives it: a number, the same for the same entry on
    every call: 53 bits of a hash of our id, so JavaScript's numbers (exact up to 2^53) read it
    unchanged (two of the 1,000 entries an answer holds at most share one with a chance of
    about 6 in 10^11)."""
    return int.from_bytes(hashlib.sha256(log_id.encode()).digest()[:8], "big") >> 11


@router.get("/logs")
async def logs(
    principal: Caller,
    session: ReadSession,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
) -> list[dict[str, Any]]:
    _need(principal, "logs:read")
    query = select(DeviceLog).where(DeviceLog.account_id == principal.account_id)
    if from_ is not None:
        query = query.where(DeviceLog.created_at >= clock.as_utc(from_))
    if to is not None:
        query = query.where(DeviceLog.created_at < clock.as_utc(to))
    entries = (await session.execute(query.order_by(DeviceLog.id.desc()).limit(1000))).scalars()
    return [
        {
            "id": log_number(entry.id),
            "createdAt": clock.iso(entry.created_at),
            "message": entry.message,
            "priority": LOG_PRIORITY.get(entry.level, "INFO"),
            "module": entry.event,
            # the reference's context maps names to strings
            "context": {
                key: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                for key, value in {"deviceId": entry.device_id, **(entry.details or {})}.items()
            },
        }
        for entry in entries
    ]


# --- settings (one document for all the account's devices) -----------------------------------

_FROM_APP = {pair: field for field, pair in device_settings.APP_KEYS.items()}
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _document_to_fields(document: dict[str, Any]) -> dict[str, Any]:
    """Their `{section: {key: value}}` onto our camelCase fields. A key may be written as the
    reference writes it (`limit_period`) or as the JavaScript SDK's types do (`limitPeriod`).
    Unknown keys are dropped; `gateway` and `encryption` are never taken from this API; a
    document with no key this API changes is refused (replacing the settings with it would wipe
    them)."""
    fields: dict[str, Any] = {}
    for section, keys in document.items():
        if section in ("gateway", "encryption") or not isinstance(keys, dict):
            continue
        for key, value in keys.items():
            field = _FROM_APP.get((section, _CAMEL.sub(r"_\1", key).lower()))
            if field is not None:
                fields[field] = value
    if not fields:
        known = ", ".join(f"{section}.{key}" for section, key in device_settings.APP_KEYS.values())
        raise bad_request(
            t("no setting this API changes was given; it changes {known}", known=known)
        )
    return fields


def _fields_to_document(fields: dict[str, Any]) -> dict[str, dict[str, Any]]:
    document: dict[str, dict[str, Any]] = {}
    for field, value in fields.items():
        if field in device_settings.APP_KEYS:
            section, key = device_settings.APP_KEYS[field]
            document.setdefault(section, {})[key] = value
    return document


async def _apply_settings(
    request: Request, principal: Principal, session: DbSession, replace: bool
) -> dict[str, Any]:
    body = await _object(request)
    account = await accounts.get_account(session, principal.account_id)
    stored = dict((account.settings or {}).get("deviceSettings") or {})
    given = _document_to_fields(body)
    fields = given if replace else {**stored, **given}
    try:
        patch = device_settings.SettingsPatch.model_validate(
            {k: v for k, v in fields.items() if v is not None}
        )
        merged = device_settings.merged({}, patch)
    except (ValueError, ValidationError) as exc:
        reason = str(exc).splitlines()[0]
        raise bad_request(t("invalid settings: {reason}", reason=reason)) from exc
    account.settings = {**(account.settings or {}), "deviceSettings": merged}
    hub: Hub = request.app.state.hub
    for device in _phones(await devices.list_devices(session, principal.account_id)):
        device.settings = dict(merged)
        # each phone reads its new settings once they are committed
        woken = partial(hub.publish, principal.account_id, device.id, Event(SETTINGS_UPDATED))
        after_commit(session, woken)
    await session.flush()
    return _fields_to_document(merged)


@router.get("/settings")
async def get_settings(principal: Caller, session: ReadSession) -> dict[str, Any]:
    _need(principal, "settings:read")
    account = await accounts.get_account(session, principal.account_id)
    return _fields_to_document((account.settings or {}).get("deviceSettings") or {})


@router.put("/settings", openapi_extra=bodies.SETTINGS)
async def put_settings(request: Request, principal: Caller, session: DbSession) -> dict[str, Any]:
    _need(principal, "settings:write")
    return await _apply_settings(request, principal, session, replace=True)


@router.patch("/settings", openapi_extra=bodies.SETTINGS)
async def patch_settings(request: Request, principal: Caller, session: DbSession) -> dict[str, Any]:
    _need(principal, "settings:write")
    return await _apply_settings(request, principal, session, replace=False)
