"""The events a webhook can subscribe to, and `emit`: events written in the caller's transaction,
with one delivery per matching webhook (a transactional outbox: nothing is lost between the
commit and the delivery)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from smsgate.kit import clock
from smsgate.kit.ids import new_id
from smsgate.webhooks.models import Delivery, Event, Webhook
from smsgate.webhooks.payloads import EVENTS, Channel, Outbound, OutboundState, Payload

# the events a webhook may subscribe to; their payloads' types are in webhooks/payloads.py
CATALOG: tuple[str, ...] = tuple(EVENTS)

events_table: Table = Event.__table__  # type: ignore[assignment]
deliveries_table: Table = Delivery.__table__  # type: ignore[assignment]
webhooks_table: Table = Webhook.__table__  # type: ignore[assignment]
# what delivery_rows reads of a webhook
HOOK_COLUMNS = ("id", "account_id", "events", "device_id", "enabled")
_HOOKS = select(*(webhooks_table.c[name] for name in HOOK_COLUMNS)).where(
    webhooks_table.c.account_id.in_(bindparam("accounts", expanding=True))
)


@dataclass(frozen=True)
class NewEvent:
    account_id: str
    type: str
    device_id: str | None
    payload: Payload


def outbound_payload(
    message_id: str,
    external_id: str | None,
    phone_number: str,
    state: str,
    error: str | None,
    channel: str,
    device_id: str | None,
    sim_number: int | None,
    at: datetime,
) -> Outbound:
    """The payload of a recipient's transition (sms:sent, whatsapp:failed, ...)."""
    payload = Outbound(
        messageId=message_id,
        externalId=external_id,
        phoneNumber=phone_number,
        state=cast(OutboundState, state),
        channel=cast(Channel, channel),
        deviceId=device_id,
        simNumber=sim_number,
        at=clock.iso(at),
    )
    if error:
        payload["error"] = error
    return payload


def outbound_type(channel: str, state: str) -> str | None:
    """The event of a recipient's transition to `state`, or None (no event for it)."""
    if state not in ("sent", "delivered", "failed"):
        return None
    return f"{'whatsapp' if channel == 'whatsapp' else 'sms'}:{state}"


def inbound_type(channel: str) -> str:
    return {"mms": "mms:received", "whatsapp": "whatsapp:received"}.get(channel, "sms:received")


async def emit(session: AsyncSession | AsyncConnection, events: Sequence[NewEvent]) -> list[str]:
    """Store events and their deliveries in the caller's transaction; return the event ids."""
    if not events:
        return []
    now = clock.now()
    rows = event_rows(events, now)
    await session.execute(insert(events_table), rows)
    accounts = sorted({e.account_id for e in events})
    hooks = (await session.execute(_HOOKS, {"accounts": accounts})).mappings().all()
    deliveries = delivery_rows(rows, hooks, now)
    if deliveries:
        await session.execute(insert(deliveries_table), deliveries)
    return [str(row["id"]) for row in rows]


def event_rows(events: Sequence[NewEvent], now: datetime) -> list[dict[str, Any]]:
    """The events as rows of the events table."""
    return [
        {
            "id": new_id(),
            "account_id": e.account_id,
            "type": e.type,
            "device_id": e.device_id,
            "payload": e.payload,
            "created_at": now,
        }
        for e in events
    ]


def delivery_rows(
    events: Sequence[Mapping[str, Any]], hooks: Sequence[Mapping[Any, Any]], now: datetime
) -> list[dict[str, Any]]:
    """One delivery per event and webhook of its account that wants it (`hooks`: rows with
    HOOK_COLUMNS)."""
    return [
        {
            "id": new_id(),
            "account_id": event["account_id"],
            "webhook_id": hook["id"],
            "event_id": event["id"],
            # a disabled webhook's events are kept for it, sent when it is enabled again
            "status": "pending" if hook["enabled"] else "held",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for event in events
        for hook in hooks
        if hook["account_id"] == event["account_id"]
        and event["type"] in hook["events"]
        and (hook["device_id"] is None or hook["device_id"] == event["device_id"])
    ]
