"""The third-party API's messages: send, state, list, cancel.

A client-chosen message `id` is our `externalId` (so repeating a send is safe), and states are
derived from ours (processing → Pending before a phone takes the message, Processed after)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from smsgate.compat import bodies
from smsgate.compat.caller import (
    MAX_ACTIVE_WITHIN_HOURS,
    MAX_OFFSET,
    PREFIX,
    Caller,
    compat_principal,
    json_object,
    need,
    time_of,
    utc,
)
from smsgate.devices import service as devices
from smsgate.errors import ApiError, bad_request
from smsgate.kit import clock, schema
from smsgate.kit.i18n import t
from smsgate.kit.responses import JSONResponse, api_router, serve_lean
from smsgate.messages import queries, states
from smsgate.messages import service as messages
from smsgate.messages.reports import APP_STATES
from smsgate.messages.schemas import Row, SendRequest
from smsgate.notify.hub import AppHub
from smsgate.storage.db import Database, DbSession, ReadSession

router = api_router(prefix=PREFIX, tags=["compat"])


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


async def _states_of(
    session: DbSession, rows: Sequence[Row], include_content: bool = False
) -> list[dict[str, Any]]:
    """The MessageStates of a page of messages."""
    found = await queries.recipients_of(session, [row["id"] for row in rows])
    return [
        _state(row, found.by_message[row["id"]], found.history[row["id"]], include_content)
        for row in rows
    ]


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
            fields[name] = time_of(body, name)  # the Python client's zone-less times are UTC
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
    need(principal, "messages:send")
    body = await json_object(request)
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
    stored = await messages.app_sender(request).store(
        principal, send_request, validate_numbers=not skipPhoneValidation
    )
    if stored.created:
        # just written, and answered from what was written: its only history line is its
        # creation (processing), which the reference's states leave out
        state = _state(stored.row, stored.recipients, [])
    else:  # a replay of its id: the original, as the writer read it in this batch
        async with database.transaction() as session:
            state = (await _states_of(session, [stored.row]))[0]
    return JSONResponse(
        state,
        status_code=202,
        # the id may be the client's own, in any script: percent-encoded, as a URL path is
        headers={"Location": f"{PREFIX}/messages/{quote(state['id'], safe='')}"},
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
    need(principal, "messages:read")
    row = await queries.find_outbound(session, principal.account_id, message_id)
    return (await _states_of(session, [row], includeContent))[0]


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
    need(principal, "messages:list")
    if sort not in ("created_at", "-created_at"):
        raise bad_request(t('sort: must be "created_at" or "-created_at"'), field="sort")
    ours = None
    if state:
        ours = APP_STATES.get(state)
        if ours is None:
            raise bad_request(t('state: unknown state "{state}"', state=state), field="state")
    page = await queries.sent_page(
        session,
        principal.account_id,
        since=utc(from_),
        until=utc(to),
        device_id=deviceId,
        state=ours,
        handed={"Pending": False, "Processed": True}.get(state or ""),
        oldest_first=sort == "created_at",
        limit=min(limit, 100),
        offset=offset,
    )
    response.headers["X-Total-Count"] = str(page.total)
    return await _states_of(session, page.rows, includeContent)


@router.delete("/messages/{message_id}")
@router.delete("/message/{message_id}", include_in_schema=False)
async def cancel(
    message_id: str, principal: Caller, session: DbSession, hub: AppHub
) -> dict[str, Any]:
    need(principal, "messages:cancel")
    row = await queries.find_outbound(session, principal.account_id, message_id)
    try:
        await messages.cancel_message(session, hub, principal.account_id, row["id"])
    except ApiError as exc:
        if exc.code == "not_cancellable":
            raise ApiError(409, t("message is not pending"), "not_cancellable") from exc
        raise
    fresh = await queries.find_outbound(session, principal.account_id, row["id"])
    return (await _states_of(session, [fresh]))[0]
