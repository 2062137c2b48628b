"""A device's own credential: the bearer token a phone (or a WhatsApp line's bridge) sends."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from smsgate.devices import presence
from smsgate.devices import service as devices
from smsgate.devices.models import Device
from smsgate.errors import ApiError
from smsgate.kit import logs
from smsgate.kit.i18n import Text, t
from smsgate.storage.db import Database, DbSession


def unauthorized(message: str | Text) -> ApiError:
    return ApiError(401, message, "unauthorized", headers={"WWW-Authenticate": "Bearer"})


async def current_device(request: Request, session: DbSession) -> Device:
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized(t("send the device token as Authorization: Bearer <token>"))
    device = await devices.device_by_token(session, token.strip())
    if device is None:
        raise unauthorized(t("unknown or revoked device token; register the device again"))
    await presence.mark_seen(session, device)
    logs.account_id.set(device.account_id)
    logs.device_id.set(device.id)
    return device


# a route's device, authenticated by its token
DeviceAuth = Annotated[Device, Depends(current_device)]


async def device_on_its_own(request: Request) -> Device:
    """The caller's device, looked up (and marked seen) in a transaction of its own: for a route
    that holds no request-wide session (the phone's reports, written in a batch's)."""
    database: Database = request.app.state.db
    async with database.transaction() as session:
        return await current_device(request, session)


# a route's device, for a route with no session of its own
DeviceOnItsOwn = Annotated[Device, Depends(device_on_its_own)]
