"""Whether a device is there: seen (at most one write every few seconds), online and offline
with their events, kept seen while its event stream is open."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.devices.models import Device
from smsgate.devices.service import log
from smsgate.kit import clock
from smsgate.storage.db import Database
from smsgate.webhooks.events import NewEvent, emit
from smsgate.webhooks.payloads import Presence

SEEN_RESOLUTION = timedelta(seconds=10)


async def mark_seen(session: AsyncSession, device: Device) -> bool:
    """Record contact (at most one write per device every few seconds); returns True, and emits
    `device:online`, when the device just came online."""
    now = clock.now()
    if device.last_seen_at is None or now - device.last_seen_at >= SEEN_RESOLUTION:
        device.last_seen_at = now
    if device.status == "online" or device.provider == "web":
        return False  # a web line's status is its WhatsApp session (whatsapp.service)
    device.last_seen_at = now
    device.status = "online"
    log(session, device, "online", "device is online")
    await emit(session, [presence_event(device)])
    return True


async def emit_presence(session: AsyncSession, device: Device) -> None:
    await emit(session, [presence_event(device)])


def presence_event(device: Device) -> NewEvent:
    return NewEvent(
        device.account_id,
        f"device:{device.status}",
        device.id,
        Presence(
            deviceId=device.id,
            name=device.name,
            status="online" if device.status == "online" else "offline",
            lastSeenAt=clock.iso(device.last_seen_at),
        ),
    )


async def mark_stale_offline(
    session: AsyncSession, offline_after: timedelta, connected: set[str]
) -> list[Device]:
    """Devices silent past the window (and without an open stream here) go offline."""
    cutoff = clock.now() - offline_after
    query = select(Device).where(Device.status == "online", Device.last_seen_at < cutoff)
    went: list[Device] = []
    for device in (await session.execute(query)).scalars():
        if device.id in connected:
            continue
        device.status = "offline"
        log(session, device, "offline", "no contact from the device", level="warn")
        went.append(device)
    await emit(session, [presence_event(d) for d in went])
    await session.flush()
    return went


TOUCH_RESOLUTION = timedelta(seconds=30)  # well inside SMSGATE_DEVICE_OFFLINE_AFTER_SECONDS


TOUCH_CHUNK = 500


async def touch(session: AsyncSession, device_ids: set[str]) -> None:
    """Streams open in this process keep their devices seen: a device's row is written at most
    once per TOUCH_RESOLUTION, so thousands of idle streams cost a trickle of writes."""
    if device_ids:
        now = clock.now()
        await session.execute(
            update(Device)
            .where(
                Device.id.in_(list(device_ids)),
                or_(Device.last_seen_at.is_(None), Device.last_seen_at < now - TOUCH_RESOLUTION),
            )
            .values(last_seen_at=now)
        )


async def touch_connected(database: Database, device_ids: set[str]) -> None:
    """`touch` in short transactions of TOUCH_CHUNK devices, so that phones' requests are not
    held behind one large write (SQLite has one writer)."""
    ordered = sorted(device_ids)
    for start in range(0, len(ordered), TOUCH_CHUNK):
        async with database.transaction() as session:
            await touch(session, set(ordered[start : start + TOUCH_CHUNK]))
