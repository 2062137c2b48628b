"""Deleting a device: the one flow the native API, the third-party API and the dashboard call."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.conversations.models import Conversation
from smsgate.devices import service
from smsgate.devices.models import Device
from smsgate.messages import states, sweeps
from smsgate.messages.models import messages_table
from smsgate.notify.hub import END_STREAM, MESSAGE_ENQUEUED, Event, Hub, wake_after_commit


async def delete_device(session: AsyncSession, hub: Hub, account_id: str, device_id: str) -> None:
    """The token stops working at once; messages it had not acknowledged go back to the queue,
    and those pinned to it fail with error `device_deleted`. Its open event streams end, and
    the account's other devices are woken to take its messages, once this commits. Its
    conversations stay, with their messages, without a device (they take no more replies). An
    unknown id (or another account's) is a 404."""
    device = await service.get_device(session, account_id, device_id)
    m = messages_table
    await sweeps.fail_messages(session, m.c.device_id == device.id, "device_deleted", limit=10_000)
    await sweeps.unassign(session, device.id)
    await session.execute(delete(Device).where(Device.id == device.id))
    service.device_types.forget(device.id)
    wake_after_commit(session, hub, account_id, device.id, Event(END_STREAM))  # streams end
    wake_after_commit(session, hub, account_id, None, Event(MESSAGE_ENQUEUED))  # others take


async def at_stake(session: AsyncSession, account_id: str, device_id: str) -> dict[str, int]:
    """What deleting a device would do, for the owner to read first: messages pinned to it that
    would fail, messages it holds that would go back to the queue, and the conversations that
    would stay without it."""
    m = messages_table
    waiting = (m.c.account_id == account_id) & (m.c.state == states.PROCESSING)

    async def count(*conditions: object) -> int:
        query = select(func.count()).select_from(m).where(waiting, *conditions)  # type: ignore[arg-type]
        return int((await session.execute(query)).scalar_one())

    threads = await session.execute(
        select(func.count())
        .select_from(Conversation)
        .where(Conversation.account_id == account_id, Conversation.device_id == device_id)
    )
    return {
        "pinned": await count(m.c.device_id == device_id),
        "held": await count(m.c.assigned_device_id == device_id, m.c.device_id.is_(None)),
        "threads": int(threads.scalar_one()),
    }
