"""The third-party API's devices, their settings (one document for all the account's phones)
and their logs."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Request, Response

from smsgate.accounts import service as accounts
from smsgate.compat import bodies
from smsgate.compat.caller import PREFIX, Caller, json_object, need, utc
from smsgate.devices import removal
from smsgate.devices import service as devices
from smsgate.devices import settings as device_settings
from smsgate.devices.models import Device
from smsgate.errors import ApiError, bad_request
from smsgate.kit import clock
from smsgate.kit.i18n import t
from smsgate.kit.responses import api_router
from smsgate.notify.hub import AppHub
from smsgate.storage.db import DbSession, ReadSession

router = api_router(prefix=PREFIX, tags=["compat"])


def _device(device: Device) -> dict[str, Any]:
    return {
        "id": device.id,
        "name": device.name,
        "createdAt": clock.iso(device.created_at),
        "updatedAt": clock.iso(device.last_seen_at or device.paired_at or device.created_at),
        "lastSeen": clock.iso(device.last_seen_at or device.paired_at or device.created_at),
        "simCards": device.sim_cards or [],
    }


@router.get("/devices")
@router.get("/device", include_in_schema=False)
async def list_devices(principal: Caller, session: ReadSession) -> list[dict[str, Any]]:
    """The devices this API speaks of, as the reference has them: phones that registered."""
    need(principal, "devices:list")
    found = await devices.list_devices(session, principal.account_id)
    return [_device(d) for d in devices.phones(found)]


@router.delete("/devices/{device_id}", status_code=204)
async def remove_device(
    device_id: str, principal: Caller, session: DbSession, hub: AppHub
) -> Response:
    """204 even for an unknown id, as the reference answers."""
    need(principal, "devices:delete")
    try:
        await removal.delete_device(session, hub, principal.account_id, device_id)
    except ApiError as exc:
        if exc.status != 404:
            raise
    return Response(status_code=204)


# --- logs -----------------------------------------------------------------------------------

LOG_PRIORITY = {"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR"}


def log_number(log_id: str) -> int:
    """A log entry's id as the reference API gives it: a number, the same for the same entry on
    every call: 53 bits of a hash of our id, so JavaScript's numbers (exact up to 2^53) read it
    unchanged (two of the 1,000 entries an answer holds at most share one with a chance of
    about 6 in 10^11)."""
    return int.from_bytes(hashlib.sha256(log_id.encode()).digest()[:8], "big") >> 11


@router.get("/logs")
async def logs(
    principal: Caller,
    session: ReadSession,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
) -> list[dict[str, Any]]:
    need(principal, "logs:read")
    entries = await devices.account_logs(session, principal.account_id, utc(from_), utc(to), 1000)
    return [
        {
            "id": log_number(entry.id),
            "createdAt": clock.iso(entry.created_at),
            "message": entry.message,
            "priority": LOG_PRIORITY.get(entry.level, "INFO"),
            "module": entry.event,
            # the reference's context maps names to strings
            "context": {
                key: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                for key, value in {"deviceId": entry.device_id, **(entry.details or {})}.items()
            },
        }
        for entry in entries
    ]


# --- settings -------------------------------------------------------------------------------

_FROM_APP = {pair: field for field, pair in device_settings.APP_KEYS.items()}
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _document_to_fields(document: dict[str, Any]) -> dict[str, Any]:
    """Their `{section: {key: value}}` onto our camelCase fields. A key may be written as the
    reference writes it (`limit_period`) or as the JavaScript SDK's types do (`limitPeriod`).
    Unknown keys are dropped; `gateway` and `encryption` are never taken from this API; a
    document with no key this API changes is refused (replacing the settings with it would wipe
    them)."""
    fields: dict[str, Any] = {}
    for section, keys in document.items():
        if section in ("gateway", "encryption") or not isinstance(keys, dict):
            continue
        for key, value in keys.items():
            field = _FROM_APP.get((section, _CAMEL.sub(r"_\1", key).lower()))
            if field is not None:
                fields[field] = value
    if not fields:
        known = ", ".join(f"{section}.{key}" for section, key in device_settings.APP_KEYS.values())
        raise bad_request(
            t("no setting this API changes was given; it changes {known}", known=known)
        )
    return fields


def _fields_to_document(fields: dict[str, Any]) -> dict[str, dict[str, Any]]:
    document: dict[str, dict[str, Any]] = {}
    for field, value in fields.items():
        if field in device_settings.APP_KEYS:
            section, key = device_settings.APP_KEYS[field]
            document.setdefault(section, {})[key] = value
    return document


@router.get("/settings")
async def get_settings(principal: Caller, session: ReadSession) -> dict[str, Any]:
    need(principal, "settings:read")
    account = await accounts.get_account(session, principal.account_id)
    return _fields_to_document(devices.account_settings(account))


async def _apply(
    request: Request, principal: Caller, session: DbSession, hub: AppHub, replace: bool
) -> dict[str, Any]:
    need(principal, "settings:write")
    fields = _document_to_fields(await json_object(request))
    merged = await devices.set_account_settings(session, hub, principal.account_id, fields, replace)
    return _fields_to_document(merged)


@router.put("/settings", openapi_extra=bodies.SETTINGS)
async def put_settings(
    request: Request, principal: Caller, session: DbSession, hub: AppHub
) -> dict[str, Any]:
    return await _apply(request, principal, session, hub, replace=True)


@router.patch("/settings", openapi_extra=bodies.SETTINGS)
async def patch_settings(
    request: Request, principal: Caller, session: DbSession, hub: AppHub
) -> dict[str, Any]:
    return await _apply(request, principal, session, hub, replace=False)
