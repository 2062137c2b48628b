"""Messages phones receive: recorded once each, as `direction: "in"`, state `received`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.billing import usage
from smsgate.config import Settings
from smsgate.conversations import joining, optouts
from smsgate.devices.models import Device
from smsgate.errors import bad_request
from smsgate.kit import clock, phones
from smsgate.kit.i18n import t
from smsgate.kit.ids import new_id
from smsgate.messages import attachments, states
from smsgate.messages.models import (
    history_row,
    history_table,
    messages_table,
    recipients_table,
)
from smsgate.storage.db import insert_ignoring_conflicts
from smsgate.webhooks.events import NewEvent, emit, inbound_type
from smsgate.webhooks.payloads import AttachmentInfo, Channel, Inbound, MmsDownloaded, Ping

APP_EVENTS = {"sms:received": "sms", "sms:data-received": "data", "mms:received": "mms"}
MAX_TEXT = 10_000


async def record(
    session: AsyncSession,
    device: Device,
    *,
    source_id: str,
    channel: str,
    sender: str,
    content: str | None,
    sim_number: int | None,
    received_at: datetime | None,
    port: int | None = None,
    settings: Settings | None = None,
    sender_name: str | None = None,
) -> str:
    """Store one received message; the same (device, source_id) again returns the first id."""
    key = f"{device.id}:{source_id}"[:255]
    try:
        number = phones.normalize(sender, "ZZ") if sender.startswith("+") else sender
    except phones.InvalidPhoneNumber:
        number = sender  # short codes and alphanumeric senders are kept as they came
    now = clock.now()
    message_id = new_id()
    values = {
        "id": message_id,
        "account_id": device.account_id,
        "direction": "in",
        "channel": channel,
        "state": states.RECEIVED,
        "device_id": device.id,
        "content": (content or "")[:MAX_TEXT] if content is not None else None,
        "data_port": port,
        "sim_number": sim_number,
        "external_id": key,
        "created_at": now,
        "updated_at": now,
    }
    statement = insert_ignoring_conflicts(
        messages_table, session.get_bind().dialect.name, "account_id", "external_id"
    ).values(values)
    inserted = (await session.execute(statement.returning(messages_table.c.id))).first()
    if inserted is None:
        existing = await session.execute(
            select(messages_table.c.id).where(
                messages_table.c.account_id == device.account_id,
                messages_table.c.external_id == key,
            )
        )
        return str(existing.scalar_one())
    recipient_id = new_id()
    await session.execute(
        insert(recipients_table).values(
            id=recipient_id,
            account_id=device.account_id,
            message_id=message_id,
            position=0,
            phone_number=number[:512],
            state=states.RECEIVED,
            updated_at=now,
        )
    )
    await joining.join(
        session,
        device.id,
        [
            joining.Joining(
                recipient_id=recipient_id,
                account_id=device.account_id,
                contact=number[:512],
                channel=channel,
                sim_number=sim_number,
                message_id=message_id,
                direction="in",
                preview=content if channel != "data" else "(data)",
                at=received_at or now,
                display_name=sender_name,
            )
        ],
    )
    if channel == "sms" and settings is not None:
        await optouts.apply_keywords(session, device.account_id, number, content, settings)
    received = history_row(
        device.account_id,
        message_id,
        states.RECEIVED,
        received_at or now,
        details={"deviceId": device.id},
    )
    await session.execute(insert(history_table).values(received))
    payload: Inbound = {
        "messageId": message_id,
        "phoneNumber": number,
        "message": content if channel != "data" else None,
        "channel": cast(Channel, channel),
        "deviceId": device.id,
        "simNumber": sim_number,
        "receivedAt": clock.iso(received_at or now),
    }
    if sender_name:
        payload["senderName"] = sender_name
    if channel == "data":
        payload["data"], payload["port"] = content, port
    await emit(session, [NewEvent(device.account_id, inbound_type(channel), device.id, payload)])
    await usage.add(session, device.account_id, {f"inbound:{channel}": 1})
    return message_id


async def from_app_webhook(
    session: AsyncSession, device: Device, envelope: Mapping[str, Any], settings: Settings
) -> str | None:
    """A webhook the stock app delivered to our ingest URL."""
    channel = APP_EVENTS.get(str(envelope.get("event")))
    payload = envelope.get("payload")
    if envelope.get("event") == "system:ping" and isinstance(payload, Mapping):
        health = payload.get("health")
        await emit(
            session,
            [
                NewEvent(
                    device.account_id,
                    "system:ping",
                    device.id,
                    Ping(
                        deviceId=device.id,
                        health=dict(health) if isinstance(health, Mapping) else None,
                    ),
                )
            ],
        )
        return None
    if envelope.get("event") == "mms:downloaded" and isinstance(payload, Mapping):
        return await _mms_downloaded(session, device, payload, settings)
    if channel is None or not isinstance(payload, Mapping):
        return None
    sender = payload.get("sender") or payload.get("phoneNumber")
    source = payload.get("messageId") or envelope.get("id")
    if not isinstance(sender, str) or not isinstance(source, str):
        return None
    if channel == "sms":
        content = payload.get("message")
    elif channel == "data":
        content = payload.get("data")
    else:
        content = payload.get("subject")
    # the stock app's word, taken leniently: an odd SIM is an unknown one
    sim = _whole(payload.get("simNumber"), 1, 3)
    return await record(
        session,
        device,
        source_id=source,
        channel=channel,
        sender=sender,
        content=content if isinstance(content, str) else None,
        sim_number=sim,
        received_at=clock.parse_zoned(payload.get("receivedAt")),
        settings=settings,
    )


async def from_agent(
    session: AsyncSession, device: Device, item: object, index: int, settings: Settings
) -> str:
    """POST /api/mobile/v1/inbox from our own agents (simulator, bridges)."""
    field = f"messages[{index}]"
    if not isinstance(item, Mapping):
        raise bad_request(t("{field}: must be an object", field=field), field=field)
    sender = item.get("phoneNumber")
    if not isinstance(sender, str) or not sender.strip():
        raise bad_request(
            t("{field}.phoneNumber: is required", field=field), field=f"{field}.phoneNumber"
        )
    kind = item.get("type", "sms")
    if kind not in ("sms", "data", "mms", "whatsapp"):
        raise bad_request(
            t("{field}.type: must be sms, data, mms or whatsapp", field=field),
            field=f"{field}.type",
        )
    content = item.get("message")
    source = item.get("id") or new_id()
    sim = _number_in(item, "simNumber", 1, 3, field)
    port = _number_in(item, "port", 1, 65535, field)
    name = item.get("name")
    message_id = await record(
        session,
        device,
        source_id=str(source),
        channel=str(kind),
        sender=sender.strip(),
        content=content if isinstance(content, str) else None,
        sim_number=sim,
        received_at=clock.parse_zoned(item.get("receivedAt")),
        port=port,
        settings=settings,
        sender_name=name.strip()[:200] if isinstance(name, str) and name.strip() else None,
    )
    parts = item.get("attachments")
    if kind == "mms" and isinstance(parts, list):
        await _keep_attachments(session, device.account_id, message_id, parts, settings)
    return message_id


def _whole(value: Any, low: int, high: int) -> int | None:
    """`value` if it is a whole number within [low, high] (not a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def _number_in(item: Mapping[str, Any], key: str, low: int, high: int, field: str) -> int | None:
    """An optional whole number of the item within [low, high]; a 400 naming it otherwise (a
    number past the database's integers would otherwise fail the whole request)."""
    value = item.get(key)
    number = _whole(value, low, high)
    if value is not None and number is None:
        raise bad_request(
            t(
                "{field}.{key}: must be a whole number from {low} to {high}",
                field=field,
                key=key,
                low=low,
                high=high,
            ),
            field=f"{field}.{key}",
        )
    return number


async def _keep_attachments(
    session: AsyncSession, account_id: str, message_id: str, parts: list[Any], settings: Settings
) -> None:
    if not await attachments.of_messages(session, [message_id]):  # once, even if re-sent
        room = await attachments.room(session, account_id, settings)
        await attachments.store(
            session, account_id, message_id, parts, settings.mms_attachment_max_bytes, room
        )


async def _mms_downloaded(
    session: AsyncSession, device: Device, payload: Mapping[str, Any], settings: Settings
) -> str | None:
    """The phone downloaded a received MMS: tell subscribers, naming our message when known.

    Attachments are passed on as the phone described them, without their data (which can be
    megabytes); `hasData` says whether the phone sent it."""
    source = payload.get("messageId")
    ours = None
    if isinstance(source, str):
        found = await session.execute(
            select(messages_table.c.id).where(
                messages_table.c.account_id == device.account_id,
                messages_table.c.external_id == f"{device.id}:{source}"[:255],
            )
        )
        ours = found.scalar()
    parts = payload.get("attachments")
    if ours is not None and isinstance(parts, list):
        await _keep_attachments(session, device.account_id, ours, parts, settings)
    described = [
        AttachmentInfo(
            partId=part.get("partId"),
            contentType=part.get("contentType"),
            name=part.get("name"),
            size=part.get("size"),
            hasData=bool(part.get("data")),
        )
        for part in payload.get("attachments") or []
        if isinstance(part, Mapping)
    ]
    sender = payload.get("sender") or payload.get("phoneNumber")
    await emit(
        session,
        [
            NewEvent(
                device.account_id,
                "mms:downloaded",
                device.id,
                MmsDownloaded(
                    messageId=ours,
                    phoneNumber=sender if isinstance(sender, str) else None,
                    subject=_text(payload.get("subject")),
                    body=_text(payload.get("body")),
                    attachments=described,
                    channel="mms",
                    deviceId=device.id,
                    # the app's time, with its offset, as ours: UTC with Z
                    receivedAt=clock.iso(clock.parse_zoned(payload.get("receivedAt"))),
                ),
            )
        ],
    )
    return ours


def _text(value: object) -> str | None:
    """A string from the phone's JSON, or None for anything else."""
    return value if isinstance(value, str) else None
