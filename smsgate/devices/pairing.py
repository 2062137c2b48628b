"""Pairing a phone: one-time credentials, registration (by token, code, password or login
code, or anonymously where the server allows), the device token and signing key it gets."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import segno
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.accounts import throttle
from smsgate.accounts.models import Account
from smsgate.billing import service as billing
from smsgate.config import Settings
from smsgate.devices.models import Device, LoginCode
from smsgate.devices.presence import presence_event
from smsgate.devices.service import DEVICE_TOKEN_PREFIX, PHONE_CHANNELS, log
from smsgate.errors import ApiError, bad_request
from smsgate.kit import clock, safe_http
from smsgate.kit.crypto import encrypt, opaque_token, token_hash
from smsgate.kit.i18n import t
from smsgate.webhooks.events import emit

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
MOBILE_PATH = "/api/mobile/v1"


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
    by = str(body.get("name") or "a phone")
    log(session, device, "paired", f"paired by {by}", details={"by": by})
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
    log(
        session,
        device,
        "paired",
        f"registered by {name} with account credentials",
        details={"by": name},
    )
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


def _code(length: int) -> str:
    return "".join(secrets.choice(CODE_DIGITS) for _ in range(length))


async def issue_login_code(session: AsyncSession, account_id: str) -> tuple[str, datetime]:
    code = _code(LOGIN_CODE_LENGTH)
    expires = clock.now() + LOGIN_CODE_TTL
    session.add(LoginCode(account_id=account_id, code_hash=token_hash(code), expires_at=expires))
    await session.flush()
    return code, expires


def pairing_out(pairing: Pairing) -> dict[str, Any]:
    return {
        "serverUrl": pairing.server_url,
        "token": pairing.token,
        "code": pairing.code,
        "expiresAt": clock.iso(pairing.expires_at),
        "qrSvg": pairing.qr_svg(),
    }


def with_qr(shown: dict[str, Any]) -> dict[str, Any]:
    """A pairing's details (pairing_out's, without its QR code) with the QR code drawn again."""
    fields = {k: v for k, v in shown.items() if k != "qrSvg"}
    at = datetime.fromisoformat(str(fields["expiresAt"]).replace("Z", "+00:00"))
    return pairing_out(Pairing(fields["serverUrl"], fields["token"], fields["code"], at))


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
