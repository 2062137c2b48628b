"""HTTP endpoints of device management (scope `devices`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request
from pydantic import ConfigDict, Field

from smsgate.accounts.auth import AppSettings, DevicesScope
from smsgate.devices import pairing as pairings
from smsgate.devices import removal, service
from smsgate.devices import settings as device_settings
from smsgate.kit.responses import api_router
from smsgate.kit.schema import Input, json_body, parse
from smsgate.notify.hub import AppHub
from smsgate.storage.db import DbSession, ReadSession
from smsgate.whatsapp import service as whatsapp

router = api_router(tags=["devices"])


class AndroidIn(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Oficina"}]})

    name: str = Field(min_length=1, max_length=128)


@router.get("/api/devices")
async def list_devices(
    principal: DevicesScope, session: ReadSession, settings: AppSettings
) -> dict[str, Any]:
    found = await service.list_devices(session, principal.account_id)
    return {
        "data": [service.device_out(d, settings.public_url) for d in found],
        "nextCursor": None,
    }


@router.post("/api/devices/android", status_code=201)
async def create_android(
    body: AndroidIn, principal: DevicesScope, session: DbSession, settings: AppSettings
) -> dict[str, Any]:
    device, pairing = await pairings.create_android(
        session, principal.account_id, body.name.strip(), settings
    )
    return {**service.device_out(device), "pairing": pairings.pairing_out(pairing)}


@router.get("/api/devices/{device_id}")
async def get_device(
    device_id: str, principal: DevicesScope, session: ReadSession, settings: AppSettings
) -> dict[str, Any]:
    device = await service.get_device(session, principal.account_id, device_id)
    return service.device_out(device, settings.public_url)


class DevicePatch(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Caja 2"}]})

    name: str = Field(min_length=1, max_length=128)


@router.patch("/api/devices/{device_id}")
async def rename_device(
    device_id: str,
    body: DevicePatch,
    principal: DevicesScope,
    session: DbSession,
    settings: AppSettings,
) -> dict[str, Any]:
    """Rename a phone or a line."""
    device = await service.get_device(session, principal.account_id, device_id)
    service.rename(device, body.name)
    await session.flush()
    return service.device_out(device, settings.public_url)


@router.post("/api/devices/{device_id}/pairing")
async def new_pairing(
    device_id: str, principal: DevicesScope, session: DbSession, settings: AppSettings
) -> dict[str, Any]:
    """Fresh pairing details; earlier ones stop working. Pairing again replaces the phone."""
    device = await service.get_device(session, principal.account_id, device_id)
    pairings.require_pairable(device)
    return pairings.pairing_out(pairings.issue_pairing(device, settings))


@router.get("/api/devices/{device_id}/settings")
async def get_settings(
    device_id: str, principal: DevicesScope, session: ReadSession, settings: AppSettings
) -> dict[str, Any]:
    device = await service.get_device(session, principal.account_id, device_id)
    if device.type == "whatsapp":
        return service.line_out(device, settings.public_url)
    return device_settings.effective(device.settings or {})


@router.patch("/api/devices/{device_id}/settings")
async def patch_settings(
    device_id: str,
    request: Request,
    principal: DevicesScope,
    session: DbSession,
    settings: AppSettings,
    hub: AppHub,
) -> dict[str, Any]:
    """Android phones: the app's settings. WhatsApp cloud lines: their Cloud API credentials
    (phoneNumberId, accessToken, appSecret, verifyToken); give only what changes."""
    device = await service.get_device(session, principal.account_id, device_id)
    raw = await json_body(request)
    if device.type == "whatsapp":
        whatsapp.set_credentials(device, parse(whatsapp.CloudCredentials, raw), settings)
        return service.line_out(device, settings.public_url)
    body = parse(device_settings.SettingsPatch, raw)
    service.update_settings(session, hub, device, body)
    return device_settings.effective(device.settings)


@router.get("/api/devices/{device_id}/logs")
async def device_logs(
    device_id: str,
    principal: DevicesScope,
    session: ReadSession,
    level: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    entries, next_cursor = await service.list_logs(
        session, principal.account_id, device_id, level, limit, cursor
    )
    return {"data": [service.log_out(e) for e in entries], "nextCursor": next_cursor}


@router.delete("/api/devices/{device_id}")
async def delete_device(
    device_id: str, principal: DevicesScope, session: DbSession, hub: AppHub
) -> dict[str, Any]:
    """The token stops working at once; messages it had not acknowledged go back to the queue,
    and those pinned to it fail with error `device_deleted`."""
    await removal.delete_device(session, hub, principal.account_id, device_id)
    return {"id": device_id, "deleted": True}
