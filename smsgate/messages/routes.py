"""HTTP endpoints: send, list, get and cancel messages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Request, Response
from pydantic import Field

from smsgate.accounts import scopes
from smsgate.accounts.auth import ReadMessagesScope, SendScope, authorize
from smsgate.devices.service import get_device
from smsgate.errors import bad_request
from smsgate.kit import clock, phones
from smsgate.kit.i18n import t
from smsgate.kit.ids import is_id
from smsgate.kit.responses import (
    JSONResponse,
    api_router,
    content_disposition,
    media_type,
    serve_lean,
)
from smsgate.kit.schema import Input, openapi_body, read_body
from smsgate.messages import attachments, queries, service, states
from smsgate.messages.schemas import SendRequest
from smsgate.notify.hub import AppHub
from smsgate.storage.db import DbSession, ReadSession

router = api_router()


@router.post(
    "/api/v1/send",
    status_code=202,
    response_class=JSONResponse,
    openapi_extra=openapi_body(SendRequest),
)
async def send(request: Request) -> JSONResponse:
    # The busiest route reads its credential and body by hand: FastAPI's dependency solving
    # cost about as much as the send's own validation. Same order, same answers as declared
    # dependencies: 401/403 first, then the body's 400. It is served lean (below).
    principal = await authorize(request, scopes.SEND)
    body = await read_body(request, SendRequest)
    message, created = await service.app_sender(request).send(principal, body)
    # A JSONResponse skips FastAPI's generic encoder: the message is plain JSON types already.
    return JSONResponse(message, status_code=202 if created else 200)


serve_lean(router, send)


@router.get("/api/v1/messages")
async def list_messages(
    principal: ReadMessagesScope,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: str | None = None,
    direction: str | None = None,
    state: str | None = None,
    device_id: Annotated[str | None, Query(alias="deviceId")] = None,
    phone_number: Annotated[str | None, Query(alias="phoneNumber")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    if direction is not None and direction not in ("in", "out"):
        raise bad_request(
            t('direction: must be "in" or "out", not "{direction}"', direction=direction),
            field="direction",
        )
    if state is not None and state not in states.ALL:
        raise bad_request(
            t(
                'state: must be one of {value}, not "{state}"',
                value=", ".join(states.ALL),
                state=state,
            ),
            field="state",
        )
    if cursor is not None and not is_id(cursor):
        raise bad_request(t("cursor: is not a cursor this API returned"), field="cursor")
    if device_id is not None:
        await get_device(session, principal.account_id, device_id)
    number = None
    if phone_number is not None:
        try:
            number = phones.normalize(phone_number, principal.region)
        except phones.InvalidPhoneNumber as exc:
            raise bad_request(
                t("phoneNumber: {exc}", exc=exc), "invalid_phone_number", "phoneNumber"
            ) from exc
    filters = queries.MessageFilter(
        direction=direction,
        state=state,
        device_id=device_id,
        phone_number=number,
        since=clock.zoned_filter(since, "since"),
        until=clock.zoned_filter(until, "until"),
    )
    data, next_cursor = await queries.list_messages(
        session, principal.account_id, filters, limit, cursor
    )
    return {"data": data, "nextCursor": next_cursor}


@router.get("/api/v1/messages/{message_id}")
async def get_message(
    message_id: str, principal: ReadMessagesScope, session: ReadSession
) -> dict[str, Any]:
    return await service.get_message(session, principal.account_id, message_id)


@router.post("/api/v1/messages/{message_id}/cancel")
async def cancel_message(
    message_id: str, principal: SendScope, session: DbSession, hub: AppHub
) -> dict[str, Any]:
    """Cancels at once a message no phone has taken; asks the phone that has it otherwise."""
    message, _ = await service.cancel_message(session, hub, principal.account_id, message_id)
    return message


class ScheduledPatch(Input):
    message: str | None = Field(default=None, min_length=1)
    schedule_at: datetime | None = Field(default=None, strict=False)


@router.patch("/api/v1/messages/{message_id}")
async def edit_message(
    message_id: str, body: ScheduledPatch, principal: SendScope, session: DbSession
) -> dict[str, Any]:
    """A scheduled message's text or time, while it still waits for its time."""
    return await service.edit_scheduled(
        session, principal, message_id, body.message, body.schedule_at
    )


@router.get("/api/v1/messages/{message_id}/attachments/{attachment_id}")
async def get_attachment(
    message_id: str, attachment_id: str, principal: ReadMessagesScope, session: ReadSession
) -> Response:
    """A received MMS file, to its owner only; never rendered inline by a browser."""
    kind, name, data = await attachments.stored_file(
        session, principal.account_id, message_id, attachment_id
    )
    return Response(
        content=data,
        media_type=media_type(kind),
        headers={
            "Content-Disposition": content_disposition(name or attachment_id),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        },
    )
