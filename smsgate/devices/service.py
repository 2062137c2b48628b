"""Devices: the registry, pairing, settings, logs, presence."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import segno
from pydantic import ValidationError
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.accounts import throttle
from smsgate.accounts.models import Account
from smsgate.accounts.service import get_account
from smsgate.billing import service as billing
from smsgate.config import Settings
from smsgate.devices import settings as device_settings
from smsgate.devices.models import Device, DeviceLog, LoginCode
from smsgate.errors import ApiError, bad_request, not_found
from smsgate.kit import clock, safe_http
from smsgate.kit.crypto import decrypt, encrypt, opaque_token, token_hash
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
from smsgate.webhooks.events import NewEvent, emit
from smsgate.webhooks.payloads import Presence

if TYPE_CHECKING:
    from smsgate.storage.db import Database

DEVICE_TOKEN_PREFIX = "dt_"  # noqa: S105 (a prefix, not a secret)
# what a phone may declare it carries, and what the stock Android app carries (it declares
# nothing: no released version sends MMS)
PHONE_CHANNELS = ("sms", "data", "mms")
STOCK_APP_CHANNELS = ("sms", "data")
PAIRING_TOKEN_PREFIX = "pt_"  # noqa: S105
LOGIN_CODE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # generated passwords
# codes a person types into the app's code field, which takes digits only
CODE_DIGITS = "0123456789"
PAIRING_CODE_LENGTH = 10  # 10^10 codes: with the throttles below, out of a guesser's reach
# wrong pairing codes or tokens: from one address, and from everyone at once, per 15 minutes
PAIRING_GUESSES_PER_ADDRESS = 10
PAIRING_GUESSES_EVERYONE = 1000
PAIRING_LOCKOUT_SECONDS = 60
LOGIN_CODE_LENGTH = 6
LOGIN_CODE_TTL = timedelta(seconds=60)
SIGNING_KEY_LENGTH = 24
LOG_LEVELS = ("debug", "info", "warn", "error")
MOBILE_PATH = "/api/mobile/v1"


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


@dataclass(frozen=True)
class Pairing:
    server_url: str
    token: str
    code: str
    expires_at: datetime

    def qr_svg(self) -> str:
        payload = f'{{"serverUrl":"{self.server_url}","token":"{self.token}"}}'
        svg: str = segno.make(payload, error="m").svg_inline(scale=4)
        return svg


def phone_reachability(public_url: str) -> str | None:
    """Why a real phone could not pair with this server address, or None when it may:
    "loopback" (this computer only), "http" (the Android app requires HTTPS), "private" (a
    local-network address: only phones on that network, and still HTTPS)."""
    parts = urlsplit(public_url)
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return "loopback"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and (address.is_loopback or address.is_unspecified):
        return "loopback"
    if parts.scheme != "https":
        return "http"
    if address is not None and not safe_http.is_public(address):
        return "private"
    return None


def issue_pairing(device: Device, settings: Settings) -> Pairing:
    """New one-time pairing credentials for a device; earlier ones stop working."""
    token = opaque_token(PAIRING_TOKEN_PREFIX)
    code = _code(PAIRING_CODE_LENGTH)
    device.pairing_token_hash = token_hash(token)
    device.pairing_code_hash = token_hash("pair:" + code)
    device.pairing_expires_at = clock.now() + timedelta(seconds=settings.pairing_ttl_seconds)
    return Pairing(settings.public_url + MOBILE_PATH, token, code, device.pairing_expires_at)


async def create_android(
    session: AsyncSession, account_id: str, name: str, settings: Settings
) -> tuple[Device, Pairing]:
    await billing.ensure_room(session, account_id, "devices", settings)
    device = Device(account_id=account_id, name=name, type="android", status="pending", settings={})
    pairing = issue_pairing(device, settings)
    session.add(device)
    await session.flush()
    return device, pairing


def _new_device_token(device: Device, settings: Settings) -> str:
    """A new device token and a new key for signing its webhooks to our ingest URL, at every
    (re-)registration: a phone that was replaced can neither pull nor forge received messages."""
    token = opaque_token(DEVICE_TOKEN_PREFIX)
    device.token_hash = token_hash(token)
    device.signing_key_encrypted = encrypt(settings.secret_key, opaque_token()[:SIGNING_KEY_LENGTH])
    return token


async def _apply_registration(
    session: AsyncSession, device: Device, body: dict[str, Any], user_agent: str | None
) -> None:
    now = clock.now()
    # a WhatsApp web line is online only while its bridge reports the session connected
    came_online = device.status != "online" and device.type == "android"
    device.paired_at = now
    device.last_seen_at = now
    if device.type == "android":
        device.status = "online"
    device.pairing_token_hash = None
    device.pairing_code_hash = None
    device.pairing_expires_at = None
    apply_declared(device, body, user_agent, registering=True)
    if came_online:
        await emit(session, [presence_event(device)])


def apply_declared(
    device: Device, body: dict[str, Any], user_agent: str | None, *, registering: bool
) -> None:
    """What a phone tells of itself at registration (`POST /device`) and later (`PATCH`): its
    SIMs, push token, app version and, our extension, the channels it carries. A registration
    that declares no channels is the stock app's: SMS and data."""
    if "simCards" in body and isinstance(body["simCards"], list):
        device.sim_cards = body["simCards"]
    if isinstance(body.get("pushToken"), str):
        device.push_token = body["pushToken"][:256]
    if user_agent and "/" in user_agent:
        device.app_version = user_agent.rsplit("/", 1)[1][:50]
    if "channels" in body:
        device.channels = _declared_channels(body["channels"])
    elif registering:
        device.channels = None


def _declared_channels(value: object) -> list[str]:
    if not isinstance(value, list) or not value or any(c not in PHONE_CHANNELS for c in value):
        raise bad_request(
            t(
                "channels: a list of the channels this phone carries, of {value}",
                value=", ".join(PHONE_CHANNELS),
            ),
            field="channels",
        )
    return sorted(set(value), key=PHONE_CHANNELS.index)


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


def pairing_rules(client: str) -> list[throttle.Rule]:
    return [
        throttle.Rule(f"pair|{client}", PAIRING_GUESSES_PER_ADDRESS, PAIRING_LOCKOUT_SECONDS),
        throttle.Rule("pair|*", PAIRING_GUESSES_EVERYONE, PAIRING_LOCKOUT_SECONDS),
    ]


async def pair(
    session: AsyncSession,
    kind: str,
    credential: str,
    body: dict[str, Any],
    user_agent: str | None,
    client: str,
    settings: Settings,
) -> tuple[Device, str]:
    """A phone registering with a pairing token (`bearer`) or a pairing or login code
    (`code`). Wrong ones are throttled per address and for everyone (429 with Retry-After),
    so the codes cannot be searched."""
    rules = pairing_rules(client)
    await throttle.check(session, rules, t("pairing attempts"))
    if kind == "bearer":
        result = await pair_with_token(session, credential, body, user_agent, settings)
    else:
        result = await pair_with_code(session, credential, body, user_agent, settings)
    if result is None:
        await throttle.failed(session, rules)
        raise ApiError(
            401,
            t("this pairing token or code is unknown, used or expired"),
            "unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
            keep_changes=True,
        )
    await throttle.succeeded(session, rules[:1])
    return result


async def pair_with_token(
    session: AsyncSession,
    pairing_token: str,
    body: dict[str, Any],
    user_agent: str | None,
    settings: Settings,
) -> tuple[Device, str] | None:
    device = (
        await session.execute(
            select(Device).where(Device.pairing_token_hash == token_hash(pairing_token))
        )
    ).scalar()
    return await _pair(session, device, body, user_agent, settings)


async def pair_with_code(
    session: AsyncSession,
    code: str,
    body: dict[str, Any],
    user_agent: str | None,
    settings: Settings,
) -> tuple[Device, str] | None:
    """A dashboard pairing code binds its device; a login code adds a device to its account."""
    code = code.strip().lower()  # typed by a person, who may write it in capitals
    device = (
        await session.execute(
            select(Device).where(Device.pairing_code_hash == token_hash("pair:" + code))
        )
    ).scalar()
    if device is not None:
        return await _pair(session, device, body, user_agent, settings)
    now = clock.now()
    login_code = (
        await session.execute(select(LoginCode).where(LoginCode.code_hash == token_hash(code)))
    ).scalar()
    if login_code is None or login_code.used_at is not None or login_code.expires_at <= now:
        return None
    claimed = await session.execute(
        update(LoginCode)
        .where(LoginCode.id == login_code.id, LoginCode.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return await add_registered_device(session, login_code.account_id, body, user_agent, settings)


async def _pair(
    session: AsyncSession,
    device: Device | None,
    body: dict[str, Any],
    user_agent: str | None,
    settings: Settings,
) -> tuple[Device, str] | None:
    if device is None or device.pairing_expires_at is None:
        return None
    if device.pairing_expires_at <= clock.now():
        return None
    token = _new_device_token(device, settings)
    await _apply_registration(session, device, body, user_agent)
    log(session, device, "paired", f"paired by {body.get('name') or 'a phone'}")
    return device, token


async def add_registered_device(
    session: AsyncSession,
    account_id: str,
    body: dict[str, Any],
    user_agent: str | None,
    settings: Settings,
) -> tuple[Device, str]:
    """A phone signing in with account credentials becomes a new device of that account."""
    await billing.ensure_room(session, account_id, "devices", settings)
    name = str(body.get("name") or "Android phone")[:128]
    device = Device(account_id=account_id, name=name, type="android", status="pending", settings={})
    token = _new_device_token(device, settings)
    session.add(device)
    await session.flush()
    await _apply_registration(session, device, body, user_agent)
    log(session, device, "paired", f"registered by {name} with account credentials")
    return device, token


ANONYMOUS_DOMAIN = "phones.invalid"


async def register_anonymous(
    session: AsyncSession, body: dict[str, Any], user_agent: str | None, settings: Settings
) -> tuple[Device, str, str, str]:
    """Open registration (when the operator enables it): a new account for a new phone.

    Returns the device, its token, the account's login and its generated password, which the
    app shows to its user (the login works wherever an email is asked for).
    """
    import secrets

    from smsgate.accounts.models import Account
    from smsgate.accounts.passwords import hash_password

    login = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(6))
    password = "".join(secrets.choice(LOGIN_CODE_ALPHABET + "-_") for _ in range(14))
    email = f"{login.lower()}-{secrets.token_hex(3)}@{ANONYMOUS_DOMAIN}"
    account = Account(
        email=email,
        name=str(body.get("name") or "")[:200],
        password_hash=await hash_password(password),
        plan=settings.default_plan,
        region=settings.default_region,
    )
    session.add(account)
    await session.flush()
    device, token = await add_registered_device(session, account.id, body, user_agent, settings)
    return device, token, email, password


async def device_by_token(session: AsyncSession, token: str) -> Device | None:
    if not token.startswith(DEVICE_TOKEN_PREFIX):
        return None
    result = await session.execute(select(Device).where(Device.token_hash == token_hash(token)))
    return result.scalar()


def signing_key(device: Device, settings: Settings) -> str:
    if device.signing_key_encrypted is None:
        return ""
    return decrypt(settings.secret_key, device.signing_key_encrypted)


def _code(length: int) -> str:
    return "".join(secrets.choice(CODE_DIGITS) for _ in range(length))


async def issue_login_code(session: AsyncSession, account_id: str) -> tuple[str, datetime]:
    code = _code(LOGIN_CODE_LENGTH)
    expires = clock.now() + LOGIN_CODE_TTL
    session.add(LoginCode(account_id=account_id, code_hash=token_hash(code), expires_at=expires))
    await session.flush()
    return code, expires


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


def pairing_out(pairing: Pairing) -> dict[str, Any]:
    return {
        "serverUrl": pairing.server_url,
        "token": pairing.token,
        "code": pairing.code,
        "expiresAt": clock.iso(pairing.expires_at),
        "qrSvg": pairing.qr_svg(),
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


def require_pairable(device: Device) -> None:
    if device.type != "android" and device.provider != "web":
        raise ApiError(
            409,
            t(
                "only Android phones and web WhatsApp lines are paired; a cloud line uses its "
                "Cloud API credentials"
            ),
            "wrong_device_type",
        )
