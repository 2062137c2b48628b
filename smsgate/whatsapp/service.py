"""WhatsApp lines: creation, credentials, the 24-hour window, session reports, inbound."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import httpx
from pydantic import Field
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.billing import service as billing
from smsgate.config import Settings
from smsgate.devices import pairing as pairings
from smsgate.devices import presence
from smsgate.devices import service as devices
from smsgate.devices.models import Device
from smsgate.errors import ApiError, bad_request
from smsgate.kit import clock, phones
from smsgate.kit.crypto import decrypt, encrypt
from smsgate.kit.i18n import t
from smsgate.kit.schema import Input
from smsgate.messages import attachments, inbound, reports, sweeps
from smsgate.messages.models import created_between, messages_table, recipients_table
from smsgate.notify.hub import MESSAGE_ENQUEUED, Event, Hub, wake_after_commit
from smsgate.storage.db import Database
from smsgate.whatsapp import cloud

WINDOW = timedelta(hours=24)
SESSION_STATES = ("pairing", "connected", "disconnected", "logged_out")

Provider = Literal["cloud", "web"]


class CloudCredentials(Input):
    """The Cloud API keys of a line; each may be given on creation or later (settings)."""

    phone_number_id: str | None = Field(default=None, pattern=r"^[0-9]{1,30}$")
    access_token: str | None = Field(default=None, min_length=10, max_length=1024)
    app_secret: str | None = Field(default=None, min_length=8, max_length=256)
    verify_token: str | None = Field(default=None, min_length=8, max_length=256)


class WhatsAppIn(CloudCredentials):
    name: str = Field(min_length=1, max_length=128)
    provider: Provider = "cloud"


def credentials(device: Device, settings: Settings) -> cloud.Credentials:
    if not device.credentials_encrypted:
        return cloud.Credentials("", "", "", "")
    stored = json.loads(decrypt(settings.secret_key, device.credentials_encrypted))
    return cloud.Credentials.from_dict(stored)


def set_credentials(device: Device, patch: CloudCredentials, settings: Settings) -> None:
    if device.provider != "cloud":
        raise bad_request(
            t("only cloud lines have Cloud API credentials; a web line is paired by QR code"),
            "wrong_device_type",
        )
    current = credentials(device, settings)
    merged = {
        "phoneNumberId": patch.phone_number_id or current.phone_number_id,
        "accessToken": patch.access_token or current.access_token,
        "appSecret": patch.app_secret or current.app_secret,
        "verifyToken": patch.verify_token or current.verify_token,
    }
    device.credentials_encrypted = encrypt(settings.secret_key, json.dumps(merged))
    # what may be shown: the number id (not a secret; also routes a shared app's webhooks)
    # and the ends of the secrets
    device.settings = {
        **(device.settings or {}),
        "phoneNumberId": merged["phoneNumberId"],
        "accessTokenHint": _mask(merged["accessToken"]),
        "verifyTokenHint": _mask(merged["verifyToken"]),
        "appSecretSet": bool(merged["appSecret"]),
        "ready": cloud.Credentials.from_dict(merged).complete(),
    }


async def create_line(
    session: AsyncSession, account_id: str, body: WhatsAppIn, settings: Settings
) -> tuple[Device, pairings.Pairing | None]:
    await billing.ensure_room(session, account_id, "devices", settings)
    device = Device(
        account_id=account_id,
        name=body.name.strip(),
        type="whatsapp",
        provider=body.provider,
        status="pending",
        settings={},
    )
    pairing = None
    if body.provider == "cloud":
        set_credentials(device, body, settings)
    else:
        if body.model_dump(exclude_none=True).keys() - {"name", "provider"}:
            raise bad_request(
                t("a web line takes no Cloud API credentials; it is linked by scanning a QR code"),
                field="provider",
            )
        device.link = {"state": "pairing", "qr": None, "at": clock.iso(clock.now())}
        pairing = pairings.issue_pairing(device, settings)
    session.add(device)
    await session.flush()
    devices.log(
        session,
        device,
        "created",
        f"WhatsApp {body.provider} line created",
        details={"provider": body.provider},
    )
    return device, pairing


def _mask(value: str) -> str | None:
    if not value:
        return None
    return value[:4] + "…" + value[-4:] if len(value) > 12 else "…" + value[-2:]


async def within_window(session: AsyncSession, device: Device, number: str) -> bool:
    """Did `number` write to this line in the last 24 hours (WhatsApp's service window)?"""
    m, r = messages_table, recipients_table
    since = clock.now() - WINDOW
    query = select(
        exists().where(
            r.c.account_id == device.account_id,
            r.c.phone_number.in_(phones.spellings(number)),
            r.c.message_id == m.c.id,
            m.c.device_id == device.id,
            m.c.direction == "in",
            *created_between(since, None),
        )
    )
    return bool((await session.execute(query)).scalar())


# --- web lines: what the bridge reports -----------------------------------------------------


async def report_session(
    session: AsyncSession, hub: Hub, device: Device, state: object, qr: object, phone: object
) -> dict[str, Any]:
    """The bridge's view of its WhatsApp session becomes the line's status and logs.

    connected -> online (device:online); disconnected / logged_out -> offline (device:offline),
    and what it had taken goes back to the queue: the account's other lines are woken to take
    it, once this commits."""
    if device.type != "whatsapp" or device.provider != "web":
        raise ApiError(409, t("only web WhatsApp lines report a session"), "wrong_device_type")
    if state not in SESSION_STATES:
        raise bad_request(
            t("state: must be one of {value}", value=", ".join(SESSION_STATES)), field="state"
        )
    if qr is not None and (not isinstance(qr, str) or len(qr) > 4096):
        raise bad_request(t("qr: must be the QR code's text, at most 4096 characters"), field="qr")
    before = (device.link or {}).get("state")
    link: dict[str, Any] = {"state": state, "qr": qr if state == "pairing" else None}
    if isinstance(phone, str) and phone:
        link["phoneNumber"] = phone[:32]
    elif state == "connected" or state == "disconnected":
        link["phoneNumber"] = (device.link or {}).get("phoneNumber")
    link["at"] = clock.iso(clock.now())
    device.link = link
    status = {"connected": "online", "pairing": "pending"}.get(str(state), "offline")
    if state != before:
        level = "info" if state in ("connected", "pairing") else "warn"
        devices.log(session, device, f"whatsapp_{state}", f"WhatsApp session {state}", level=level)
    if status != device.status:
        device.status = status
        if status != "pending":
            await presence.emit_presence(session, device)
    if state in ("disconnected", "logged_out"):
        # what the line took but had not started on goes back: another line may send it
        await sweeps.unassign(session, device.id)
        wake_after_commit(session, hub, device.account_id, None, Event(MESSAGE_ENQUEUED))
    return devices.line_out(device)


# --- cloud lines: Meta's webhooks -----------------------------------------------------------


async def _route(
    session: AsyncSession, device: Device, number_id: str | None, settings: Settings
) -> Device | None:
    """The line a change is for: this one, or another cloud line of the account on the same
    Meta app (one app's webhook carries all its numbers)."""
    own = (device.settings or {}).get("phoneNumberId")
    if number_id is None or number_id == own:
        return device
    candidates = await devices.list_devices(session, device.account_id)
    secret = credentials(device, settings).app_secret
    for other in candidates:
        if (
            other.provider == "cloud"
            and (other.settings or {}).get("phoneNumberId") == number_id
            and credentials(other, settings).app_secret == secret
        ):
            return other
    return None


@dataclass(frozen=True)
class PendingMedia:
    account_id: str
    line_id: str
    message_id: str
    media: cloud.Media


async def receive_cloud_webhook(
    session: AsyncSession,
    device: Device,
    payload: Mapping[str, Any],
    settings: Settings,
    files: list[PendingMedia] | None = None,
) -> dict[str, int]:
    """Inbound messages go to the inbox and threads; statuses move recipient states. Files the
    customers sent are added to `files`, to be fetched once the webhook has been answered."""
    counts = {"messages": 0, "statuses": 0}
    for value in cloud.changes(payload):
        line = await _route(session, device, cloud.phone_number_id(value), settings)
        if line is None:
            continue
        await presence.mark_seen(session, line)
        for message in cloud.inbound_of(value):
            message_id = await inbound.record(
                session,
                line,
                source_id=message.provider_id,
                channel="whatsapp",
                sender=message.sender,
                content=message.text,
                sim_number=None,
                received_at=message.received_at,
                settings=settings,
                sender_name=message.profile_name,
            )
            if message.media is not None and files is not None:
                files.append(PendingMedia(line.account_id, line.id, message_id, message.media))
            counts["messages"] += 1
        for status in cloud.statuses_of(value):
            await reports.provider_status(
                session, line, status.provider_id, status.state, status.error, status.at
            )
            counts["statuses"] += 1
    return counts


async def fetch_files(
    database: Database, http: httpx.AsyncClient, settings: Settings, files: list[PendingMedia]
) -> None:
    """Fetch received files from Meta and keep them as the message's attachments (up to
    SMSGATE_MMS_ATTACHMENT_MAX_BYTES; a larger or unreachable file is described, not kept)."""
    for file in files:
        async with database.sessions() as session:
            line = await session.get(Device, file.line_id)
            keys = credentials(line, settings) if line is not None else None
        if keys is None or not keys.complete():
            continue
        limit = settings.mms_attachment_max_bytes
        data = await cloud.download(
            http,
            settings.whatsapp_graph_url,
            keys,
            file.media,
            limit,
            allow_private=settings.webhooks_allow_private,
        )
        part: dict[str, Any] = {"contentType": file.media.mime_type, "name": file.media.filename}
        if data is not None:
            part["data"] = base64.b64encode(data).decode()
        async with database.transaction() as session:
            if not await attachments.of_messages(session, [file.message_id]):  # once
                room = await attachments.room(session, file.account_id, settings)
                await attachments.store(
                    session, file.account_id, file.message_id, [part], limit, room
                )
