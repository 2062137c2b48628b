"""Devices: the registry, pairing, settings, logs, presence."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import segno
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.accounts.models import Account
from smsgate.accounts.service import get_account
from smsgate.config import Settings
from smsgate.devices import settings as device_settings
from smsgate.devices.models import Device, DeviceLog
from smsgate.errors import ApiError, bad_request, not_found
from smsgate.kit import clock
from smsgate.kit.crypto import decrypt, token_hash
from smsgate.kit.i18n import t
from smsgate.kit.ids import is_id
from smsgate.notify.hub import (
    MESSAGES_EXPORT_REQUESTED,
    SETTINGS_UPDATED,
    Event,
    Hub,
    wake_after_commit,
)
from smsgate.storage.tenancy import of_account, owned

if TYPE_CHECKING:
    from smsgate.storage.db import Database

# what a phone may declare it carries, and what the stock Android app carries (it declares
# nothing: no released version sends MMS)
DEVICE_TOKEN_PREFIX = "dt_"  # noqa: S105 (a prefix, not a secret)
PHONE_CHANNELS = ("sms", "data", "mms")
STOCK_APP_CHANNELS = ("sms", "data")
LOG_LEVELS = ("debug", "info", "warn", "error")


async def get_device(session: AsyncSession, account_id: str, device_id: str) -> Device:
    device = (await session.execute(owned(select(Device), Device, account_id, device_id))).scalar()
    if device is None:
        raise not_found("device")
    return device


class DeviceTypes:
    """A device's type by (account, device id), for a send's checks without a database round
    trip per send. Neither a device's account nor its type ever changes; a device deleted
    after it was remembered here is refused by the messages' foreign key when the send is
    written (the send answers 404 then), and this process forgets the devices it deletes."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self.max_entries = max_entries
        self._types: dict[tuple[str, str], str] = {}

    async def get(self, database: Database, account_id: str, device_id: str) -> str:
        """The device's type ("android" or "whatsapp"), or 404 `not_found` naming the field
        `deviceId` (never remembered)."""
        key = (account_id, device_id)
        found = self._types.get(key)
        if found is None:
            async with database.sessions() as session:
                try:
                    found = (await get_device(session, account_id, device_id)).type
                except ApiError as exc:
                    raise not_found("device", "deviceId") from exc
            if len(self._types) >= self.max_entries:
                self._types.clear()
            self._types[key] = found
        return found

    def forget(self, device_id: str) -> None:
        self._types = {k: v for k, v in self._types.items() if k[1] != device_id}


# One per process (a deletion elsewhere is caught by the foreign key, as said above).
device_types = DeviceTypes()


def rename(device: Device, name: str) -> None:
    """Give the device a new name (1 to 128 characters, trimmed); 400 naming the field."""
    name = name.strip()
    if not 0 < len(name) <= 128:
        raise bad_request(t("name: give 1 to 128 characters"), field="name")
    device.name = name


async def find_device(session: AsyncSession, device_id: str) -> Device | None:
    """A device by id, whatever its account: for a caller the device itself authenticates (a
    signature made with its key, a provider's webhook for its line)."""
    return await session.get(Device, device_id) if device_id else None


async def list_devices(session: AsyncSession, account_id: str) -> list[Device]:
    query = of_account(select(Device), Device, account_id).order_by(Device.id)
    return list((await session.execute(query)).scalars())


def log(
    session: AsyncSession,
    device: Device,
    event: str,
    message: str,
    *,
    level: str = "info",
    details: dict[str, Any] | None = None,
) -> None:
    log_for(session, device.account_id, device.id, event, message, level=level, details=details)


def log_for(
    session: AsyncSession,
    account_id: str,
    device_id: str,
    event: str,
    message: str,
    *,
    level: str = "info",
    details: dict[str, Any] | None = None,
) -> None:
    """A device log line, by the device's ids (for callers holding no Device)."""
    session.add(
        DeviceLog(
            account_id=account_id,
            device_id=device_id,
            level=level,
            event=event,
            message=message[:2000],
            details=details,
        )
    )


# --- pairing --------------------------------------------------------------------------------


def channels_of(device: Device) -> tuple[str, ...]:
    """What a device carries: a phone what it declared (or the stock app's SMS and data), a
    WhatsApp line WhatsApp."""
    if device.type == "whatsapp":
        return ("whatsapp",)
    if device.type != "android":
        return ()
    return tuple(device.channels) if device.channels else STOCK_APP_CHANNELS


async def can_carry(
    database: Database, account_id: str, channel: str, device_id: str | None
) -> bool:
    """Whether the account has a device (paired or still pending, online or not: a send waits
    for it within its validity) that carries `channel`; with `device_id`, whether that one does."""
    async with database.reading() as session:
        query = select(Device).where(Device.account_id == account_id)
        if device_id is not None:
            query = query.where(Device.id == device_id)
        found = (await session.execute(query)).scalars().all()
    return any(channel in channels_of(device) for device in found)


async def device_by_token(session: AsyncSession, token: str) -> Device | None:
    if not token.startswith(DEVICE_TOKEN_PREFIX):
        return None
    result = await session.execute(select(Device).where(Device.token_hash == token_hash(token)))
    return result.scalar()


def signing_key(device: Device, settings: Settings) -> str:
    if device.signing_key_encrypted is None:
        return ""
    return decrypt(settings.secret_key, device.signing_key_encrypted)


# --- settings -------------------------------------------------------------------------------


def update_settings(
    session: AsyncSession, hub: Hub, device: Device, patch: device_settings.SettingsPatch
) -> None:
    """Merge `patch` into the phone's settings; the phone reads them once this commits."""
    try:
        device.settings = device_settings.merged(device.settings or {}, patch)
    except ValueError as exc:
        raise bad_request(str(exc), field="settings") from exc
    wake_after_commit(session, hub, device.account_id, device.id, Event(SETTINGS_UPDATED))


def phones(found: list[Device]) -> list[Device]:
    """Phones that registered: a phone waiting to be paired has never been seen, and a
    WhatsApp line has no phone settings."""
    return [d for d in found if d.type == "android" and d.paired_at is not None]


def account_settings(account: Account) -> dict[str, Any]:
    """The settings the account gives all its phones (the third-party API's one document)."""
    return dict((account.settings or {}).get("deviceSettings") or {})


async def set_account_settings(
    session: AsyncSession, hub: Hub, account_id: str, fields: dict[str, Any], replace: bool
) -> dict[str, Any]:
    """Give every phone of the account the same settings: `fields` merged into the account's
    (or replacing them); 400 naming the first wrong one. Each phone reads them once this
    commits. Returns the account's settings as stored."""
    account = await get_account(session, account_id)
    fields = fields if replace else {**account_settings(account), **fields}
    try:
        patch = device_settings.SettingsPatch.model_validate(
            {k: v for k, v in fields.items() if v is not None}
        )
        merged = device_settings.merged({}, patch)
    except (ValueError, ValidationError) as exc:
        reason = str(exc).splitlines()[0]
        raise bad_request(t("invalid settings: {reason}", reason=reason)) from exc
    account.settings = {**(account.settings or {}), "deviceSettings": merged}
    for device in phones(await list_devices(session, account_id)):
        device.settings = dict(merged)
        wake_after_commit(session, hub, account_id, device.id, Event(SETTINGS_UPDATED))
    await session.flush()
    return merged


def request_inbox_export(
    session: AsyncSession, hub: Hub, account_id: str, device_id: str | None, data: dict[str, str]
) -> None:
    """Ask the account's phones (or one) to read their inbox again and report it (the app's
    MessagesExportRequested), once this commits."""
    wake_after_commit(session, hub, account_id, device_id, Event(MESSAGES_EXPORT_REQUESTED, data))


# --- logs -----------------------------------------------------------------------------------


async def list_logs(
    session: AsyncSession,
    account_id: str,
    device_id: str,
    level: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[DeviceLog], str | None]:
    await get_device(session, account_id, device_id)
    if level is not None and level not in LOG_LEVELS:
        raise bad_request(
            t("level: must be one of {value}", value=", ".join(LOG_LEVELS)), field="level"
        )
    if cursor is not None and not is_id(cursor):
        raise bad_request(t("cursor: is not a cursor this API returned"), field="cursor")
    query = of_account(select(DeviceLog), DeviceLog, account_id).where(
        DeviceLog.device_id == device_id
    )
    if level is not None:
        query = query.where(DeviceLog.level.in_(LOG_LEVELS[LOG_LEVELS.index(level) :]))
    if cursor:
        query = query.where(DeviceLog.id < cursor)
    rows = list(
        (await session.execute(query.order_by(DeviceLog.id.desc()).limit(limit + 1))).scalars()
    )
    page = rows[:limit]
    return page, (page[-1].id if len(rows) > limit else None)


async def account_logs(
    session: AsyncSession,
    account_id: str,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[DeviceLog]:
    """The newest `limit` log entries of all the account's devices in [since, until)."""
    query = of_account(select(DeviceLog), DeviceLog, account_id)
    if since is not None:
        query = query.where(DeviceLog.created_at >= clock.as_utc(since))
    if until is not None:
        query = query.where(DeviceLog.created_at < clock.as_utc(until))
    return list((await session.execute(query.order_by(DeviceLog.id.desc()).limit(limit))).scalars())


# --- presence -------------------------------------------------------------------------------


def device_out(device: Device, public_url: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": device.id,
        "name": device.name,
        "type": device.type,
        "status": device.status,
        "lastSeenAt": clock.iso(device.last_seen_at),
        "simCards": device.sim_cards or [],
        "appVersion": device.app_version,
        "createdAt": clock.iso(device.created_at),
        "pairedAt": clock.iso(device.paired_at),
    }
    if device.type == "whatsapp":
        out["whatsapp"] = line_out(device, public_url)
    return out


WHATSAPP_WEBHOOK_PATH = "/api/whatsapp/webhook/"


def line_out(device: Device, public_url: str = "") -> dict[str, Any]:
    """A WhatsApp line's provider details; secrets only as hints (their ends)."""
    stored = device.settings or {}
    if device.provider == "cloud":
        return {
            "provider": "cloud",
            "phoneNumberId": stored.get("phoneNumberId") or None,
            "accessToken": stored.get("accessTokenHint"),
            "appSecretSet": bool(stored.get("appSecretSet")),
            "verifyToken": stored.get("verifyTokenHint"),
            "ready": bool(stored.get("ready")),
            "webhookUrl": public_url + WHATSAPP_WEBHOOK_PATH + device.id if public_url else None,
        }
    link = device.link or {}
    return {
        "provider": "web",
        "session": link.get("state", "pairing"),
        "phoneNumber": link.get("phoneNumber"),
        "qrAvailable": link_qr(device) is not None,
        "sessionUpdatedAt": link.get("at"),
    }


def log_out(entry: DeviceLog) -> dict[str, Any]:
    return {
        "id": entry.id,
        "level": entry.level,
        "event": entry.event,
        "message": entry.message,
        "details": entry.details,
        "createdAt": clock.iso(entry.created_at),
    }


def link_qr(device: Device) -> str | None:
    """The WhatsApp Web QR code a web line's bridge is showing, while it waits to be scanned."""
    link = device.link or {}
    code = link.get("qr") if device.provider == "web" and link.get("state") == "pairing" else None
    return str(code) if code else None


def qr_svg(text: str) -> str:
    svg: str = segno.make(text, error="l").svg_inline(scale=4)
    return svg
