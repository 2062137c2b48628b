"""Device look-ups other domains may call."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.devices.models import Device
from smsgate.errors import not_found
from smsgate.storage.tenancy import owned


async def get_device(session: AsyncSession, account_id: str, device_id: str) -> Device:
    device = (await session.execute(owned(select(Device), Device, account_id, device_id))).scalar()
    if device is None:
        raise not_found("device")
    return device
