"""The events a webhook can subscribe to, and `emit`: events written in the caller's transaction,
with one delivery per matching webhook (a transactional outbox: nothing is lost between the
commit and the delivery)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

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
_HOOKS = select(
    webhooks_table.c.id,
    webhooks_table.c.account_id,
    webhooks_table.c.events,
    webhooks_table.c.device_id,
    webhooks_table.c.enabled,
).where(webhooks_table.c.account_id.in_(bindparam("accounts", expanding=True)))


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
    rows = [
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
    await session.execute(insert(events_table), rows)
    accounts = sorted({e.account_id for e in events})
    hooks = (await session.execute(_HOOKS, {"accounts": accounts})).all()
    deliveries = [
        {
            "id": new_id(),
            "account_id": row["account_id"],
            "webhook_id": hook_id,
            "event_id": row["id"],
            # a disabled webhook's events are kept for it, sent when it is enabled again
            "status": "pending" if enabled else "held",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for row in rows
        for hook_id, account_id, types, device_id, enabled in hooks
        if account_id == row["account_id"]
        and row["type"] in types
        and (device_id is None or device_id == row["device_id"])
    ]
    if deliveries:
        await session.execute(insert(deliveries_table), deliveries)
    return [str(row["id"]) for row in rows]
