"""The queue: which phone sends what. A message waits in `processing` until a device pulls
it. A pull claims it for that device (`assigned_device_id`, `handed_at`); it keeps coming back
to that device until the device reports on it (`acknowledged_at`), after which it never goes to
another device. Messages are handed in the phone app's format (WhatsApp lines read the same)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    and_,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.conversations import joining
from smsgate.devices import service as devices
from smsgate.devices import settings as device_settings
from smsgate.devices.models import Device
from smsgate.kit import clock
from smsgate.kit.observe import DISPATCH_SECONDS
from smsgate.messages import attachments, states
from smsgate.messages.models import (
    messages_table,
    recipients_table,
)
from smsgate.messages.schemas import Row

MAX_PULL = 100
EXPEDITED_PRIORITY = 100
ANDROID_CHANNELS = devices.PHONE_CHANNELS  # what any phone may hold (stall sweeps)
WHATSAPP_CHANNELS = ("whatsapp",)


def _wire(
    row: Row,
    recipients: Sequence[Row],
    cancelling: bool,
    files: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One element of GET /message, exactly as the app reads it (absent rather than null)."""
    out: dict[str, Any] = {
        "id": row["id"],
        # only recipients still to be sent: an opted-out one is never shown to a phone
        "phoneNumbers": [r["phone_number"] for r in recipients if r["state"] == states.PROCESSING],
        "withDeliveryReport": bool(row["with_delivery_report"]),
        "isEncrypted": bool(row["is_encrypted"]),
        "priority": row["priority"],
        "state": "Cancelling" if cancelling else "Pending",
        "createdAt": clock.iso(row["created_at"]),
    }
    if row["channel"] == "data":
        out["dataMessage"] = {"data": row["content"], "port": row["data_port"]}
    elif row["channel"] == "mms":
        # the app's MMS format (never with textMessage); only phones that declared mms get it
        mms: dict[str, Any] = {"attachments": list(files or ())}
        if row["content"] is not None:
            mms["text"] = row["content"]
        out["mmsMessage"] = mms
    elif row["channel"] == "whatsapp":
        # only WhatsApp lines are handed these (our cloud sender and `smsgate whatsapp bridge`)
        whatsapp: dict[str, Any] = {}
        if row["content"] is not None:
            whatsapp["text"] = row["content"]
        if row["media_urls"]:
            whatsapp["mediaUrls"] = list(row["media_urls"])
        if row["template"]:
            whatsapp["template"] = dict(row["template"])
        out["whatsappMessage"] = whatsapp
    else:
        out["textMessage"] = {"text": row["content"] or ""}
        out["message"] = row["content"] or ""
    if row["sim_number"] is not None:
        out["simNumber"] = row["sim_number"]
    if row["valid_until"] is not None:
        out["validUntil"] = clock.iso(row["valid_until"])
    if row["schedule_at"] is not None:
        out["scheduleAt"] = clock.iso(row["schedule_at"])  # due already: handed only then
    return out


async def _recipients_of(session: AsyncSession, ids: list[str]) -> dict[str, list[Row]]:
    by_message: dict[str, list[Row]] = {i: [] for i in ids}
    if ids:
        r = recipients_table
        rows = await session.execute(
            select(r).where(r.c.message_id.in_(ids)).order_by(r.c.message_id, r.c.position)
        )
        for recipient in rows.mappings():
            by_message[recipient["message_id"]].append(recipient)
    return by_message


async def pull(session: AsyncSession, device: Device, order: str) -> list[dict[str, Any]]:
    """What the device should work on now: its claimed and cancelling messages, plus new claims
    within its rate limit (priority >= 100 exempt), highest priority first."""
    m = messages_table
    now = clock.now()
    waiting = and_(
        m.c.account_id == device.account_id,
        m.c.state == states.PROCESSING,
        m.c.acknowledged_at.is_(None),
    )
    mine = (
        (
            await session.execute(
                select(m).where(waiting, m.c.assigned_device_id == device.id).limit(MAX_PULL)
            )
        )
        .mappings()
        .all()
    )
    cancelling = (
        (
            await session.execute(
                select(m).where(
                    m.c.account_id == device.account_id,
                    m.c.state == states.PROCESSING,
                    m.c.assigned_device_id == device.id,
                    m.c.cancel_requested_at.is_not(None),
                    m.c.acknowledged_at.is_not(None),
                )
            )
        )
        .mappings()
        .all()
    )
    room = MAX_PULL - len(mine) - len(cancelling)
    claimed: list[Row] = []
    channels = channels_of(device)
    if room > 0 and channels:
        claimed = await _claim(session, device, channels, order, room, now)
    rows = [*mine, *claimed]
    by_message = await _recipients_of(session, [r["id"] for r in [*rows, *cancelling]])
    media = await attachments.for_phone(session, [r["id"] for r in rows if r["channel"] == "mms"])
    ascending = order == "fifo"
    rows.sort(key=lambda r: (-r["priority"], r["id"] if ascending else _desc(r["id"])))
    out = [
        _wire(r, by_message[r["id"]], r["cancel_requested_at"] is not None, media.get(r["id"]))
        for r in rows
    ]
    out += [_wire(r, by_message[r["id"]], True) for r in cancelling]
    return out


def channels_of(device: Device) -> tuple[str, ...]:
    """What a device may be handed now: what it carries (devices.channels_of: SMS and data to
    a stock phone, MMS too to one that declared it), WhatsApp to a line that can send now (a
    web line only while its WhatsApp session is connected)."""
    linked = (device.link or {}).get("state") == "connected"
    if device.type == "whatsapp" and device.provider == "web" and not linked:
        return ()
    return devices.channels_of(device)


def _desc(value: str) -> str:
    return "".join(chr(0x10FFFF - ord(ch)) for ch in value)


async def _claim(
    session: AsyncSession,
    device: Device,
    channels: tuple[str, ...],
    order: str,
    room: int,
    now: datetime,
) -> list[Row]:
    m = messages_table
    claimable = and_(
        m.c.account_id == device.account_id,
        m.c.state == states.PROCESSING,
        m.c.acknowledged_at.is_(None),
        m.c.assigned_device_id.is_(None),
        m.c.cancel_requested_at.is_(None),
        m.c.channel.in_(channels),
        or_(m.c.device_id.is_(None), m.c.device_id == device.id),
        or_(m.c.valid_until.is_(None), m.c.valid_until > now),
        or_(m.c.schedule_at.is_(None), m.c.schedule_at <= now),
    )
    newest_first = m.c.id.asc() if order == "fifo" else m.c.id.desc()
    postgres = session.get_bind().dialect.name == "postgresql"

    async def candidates(condition: Any, limit: int) -> list[str]:
        query = select(m.c.id).where(claimable, condition)
        query = query.order_by(m.c.priority.desc(), newest_first).limit(limit)
        if postgres:
            query = query.with_for_update(skip_locked=True)
        return list((await session.execute(query)).scalars())

    ids = await candidates(m.c.priority >= EXPEDITED_PRIORITY, room)
    limit = device_settings.rate_limit(device.settings or {})
    normal_room = room - len(ids)
    if limit is not None and normal_room > 0:
        count, seconds = limit
        used = (
            await session.execute(
                select(func.count())
                .select_from(m)
                .where(
                    m.c.assigned_device_id == device.id,
                    m.c.handed_at >= now - timedelta(seconds=seconds),
                    m.c.priority < EXPEDITED_PRIORITY,
                )
            )
        ).scalar_one()
        normal_room = min(normal_room, max(0, count - used))
    if normal_room > 0:
        ids += await candidates(m.c.priority < EXPEDITED_PRIORITY, normal_room)
    if not ids:
        return []
    # The guard on assigned_device_id makes the claim safe even if another puller saw the rows.
    taken = (
        (
            await session.execute(
                update(m)
                .where(m.c.id.in_(ids), m.c.assigned_device_id.is_(None))
                .values(assigned_device_id=device.id, handed_at=now)
                .returning(m.c.id)
            )
        )
        .scalars()
        .all()
    )
    if not taken:
        return []
    await joining.join_outbound(session, taken, device.id)
    rows: list[Row] = list(
        (await session.execute(select(m).where(m.c.id.in_(list(taken))))).mappings()
    )
    for row in rows:
        waited = (now - clock.as_utc(row["created_at"])).total_seconds()
        DISPATCH_SECONDS.labels(row["channel"]).observe(max(0.0, waited))
    return rows
