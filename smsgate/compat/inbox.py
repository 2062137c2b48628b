"""The third-party API's inbox: received messages, and asking the phones to report theirs
again."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Request, Response

from smsgate.accounts.service import Principal
from smsgate.compat import bodies
from smsgate.compat.caller import (
    MAX_OFFSET,
    PREFIX,
    Caller,
    device_id_of,
    json_object,
    need,
    time_of,
    utc,
)
from smsgate.devices import service as devices
from smsgate.errors import bad_request
from smsgate.kit import clock
from smsgate.kit.i18n import t
from smsgate.kit.responses import api_router
from smsgate.messages import queries
from smsgate.notify.hub import AppHub, Hub
from smsgate.storage.db import DbSession, ReadSession

router = api_router(prefix=PREFIX, tags=["compat"])

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
    need(principal, "inbox:list")
    channels = None
    if type_:
        channels = [c for c, name in INBOX_TYPES.items() if name == type_]
        if not channels:
            raise bad_request(t('type: unknown type "{type}"', type=type_), field="type")
    page = await queries.received_page(
        session,
        principal.account_id,
        channels=channels,
        since=utc(from_),
        until=utc(to),
        device_id=deviceId,
        limit=limit,
        offset=offset,
    )
    senders = (await queries.recipients_of(session, [row["id"] for row in page.rows])).by_message
    response.headers["X-Total-Count"] = str(page.total)
    return [
        {
            "id": row["id"],
            "type": INBOX_TYPES.get(row["channel"], "SMS"),
            "sender": senders[row["id"]][0]["phone_number"] if senders[row["id"]] else "",
            "contentPreview": (row["content"] or "")[:160],
            "createdAt": clock.iso(row["created_at"]),
            **({"simNumber": row["sim_number"]} if row["sim_number"] else {}),
        }
        for row in page.rows
    ]


async def _export(request: Request, principal: Principal, session: DbSession, hub: Hub) -> None:
    """Ask the account's phones (or one) to re-read their inbox and report it again."""
    body = await json_object(request)
    since, until = time_of(body, "since"), time_of(body, "until")
    if until <= since:
        raise bad_request(t("until: must be after since"), field="until")
    device_id = device_id_of(body)
    if device_id:
        await devices.get_device(session, principal.account_id, device_id)
    types = body.get("messageTypes") or ["SMS"]
    if not isinstance(types, list) or not all(x in bodies.INCOMING_TYPES for x in types):
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
    devices.request_inbox_export(session, hub, principal.account_id, device_id, data)


@router.post(
    "/inbox/refresh",
    status_code=202,
    response_class=Response,  # an empty answer
    openapi_extra=bodies.INBOX_REFRESH,
)
@router.post("/inbox/export", status_code=202, include_in_schema=False)
async def refresh_inbox(
    request: Request, principal: Caller, session: DbSession, hub: AppHub
) -> Response:
    need(principal, "inbox:refresh")
    await _export(request, principal, session, hub)
    return Response(status_code=202)


@router.post("/messages/inbox/export", status_code=202, include_in_schema=False)
async def export_inbox(
    request: Request, principal: Caller, session: DbSession, hub: AppHub
) -> Response:
    need(principal, "messages:export")
    await _export(request, principal, session, hub)
    return Response(status_code=202, headers={"Deprecation": "true"})
