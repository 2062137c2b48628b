"""Deleting a device: the one flow the native API, the third-party API and the dashboard call."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.devices import service
from smsgate.devices.models import Device
from smsgate.messages import dispatch
from smsgate.messages.models import messages_table
from smsgate.notify.hub import END_STREAM, MESSAGE_ENQUEUED, Event, Hub
from smsgate.storage.db import after_commit


async def delete_device(session: AsyncSession, hub: Hub, account_id: str, device_id: str) -> None:
    """The token stops working at once; messages it had not acknowledged go back to the queue,
    and those pinned to it fail with error `device_deleted`. Its open event streams end, and
    the account's other devices are woken to take its messages, once this commits. An unknown
    id (or another account's) is a 404."""
    device = await service.get_device(session, account_id, device_id)
    m = messages_table
    await dispatch.fail_messages(
        session, m.c.device_id == device.id, "device_deleted", limit=10_000
    )
    await dispatch.unassign(session, device.id)
    await session.execute(delete(Device).where(Device.id == device.id))
    service.device_types.forget(device.id)

    def woken() -> None:
        hub.publish(account_id, device.id, Event(END_STREAM))  # its open streams end now
        hub.publish(account_id, None, Event(MESSAGE_ENQUEUED))  # the others take its messages

    after_commit(session, woken)
