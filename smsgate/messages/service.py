"""Accepting sends (validated, stored exactly once), cancelling them, and querying messages."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.accounts.service import Principal
from smsgate.billing import abuse, plans, usage
from smsgate.billing.usage import Quota
from smsgate.config import Settings
from smsgate.devices import service as devices
from smsgate.devices.service import device_types
from smsgate.errors import ApiError, bad_request, not_found
from smsgate.kit import clock, phones, safe_http, segments
from smsgate.kit.ids import is_id, new_id
from smsgate.messages import attachments, states
from smsgate.messages.models import history_row, history_table, messages_table, recipients_table
from smsgate.messages.schemas import Row, SendRequest, message_out
from smsgate.messages.sending.prepare import PreparedMessage
from smsgate.messages.sending.writer import SendWriter, Stored
from smsgate.mobile.hub import MESSAGE_ENQUEUED, Event, Hub
from smsgate.storage.db import Database

MAX_TEXT_LENGTH = {"sms": 1600, "whatsapp": 4096, "mms": 5000}
MAX_ENCRYPTED_LENGTH = 16384
MAX_CAPTION_LENGTH = 1024  # WhatsApp's limit for the caption of a media message
MAX_DATA_BYTES = 133  # one PDU of 140 bytes less the port-addressing header
DEFAULT_DATA_PORT = 53739
MAX_MEDIA_URLS = 10
MAX_URL_LENGTH = 2048
MAX_TTL_SECONDS = 30 * 24 * 3600
MAX_SCHEDULE_AHEAD = timedelta(days=366)
sequential = abuse.SequentialGuard()  # per process


def _request_hash(request: SendRequest) -> str:
    """Fingerprint of what the client asked for, to tell a replay from a different request."""
    canonical = json.dumps(
        request.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _recipients(request: SendRequest, region: str, validate: bool = True) -> list[str]:
    seen: dict[str, None] = {}
    for index, raw in enumerate(request.phone_numbers):
        field = f"phoneNumbers[{index}]"
        if request.is_encrypted:
            if not raw or len(raw) > 512:
                raise bad_request(
                    f"{field}: an encrypted number must be 1 to 512 characters", field=field
                )
            number = raw
        else:
            try:
                number = phones.normalize(raw, region)
            except phones.InvalidPhoneNumber as exc:
                kept = "".join(ch for ch in raw if ch.isdigit() or ch in "+*#")
                if validate or not kept:
                    raise bad_request(f"{field}: {exc}", "invalid_phone_number", field) from exc
                number = kept  # as the phone itself would dial it
        seen.setdefault(number, None)
    return list(seen)


def _check_content(request: SendRequest) -> tuple[str | None, int | None]:
    """Validate the content for the channel; return (content, data port)."""
    channel, text = request.channel, request.message
    if request.media_urls is not None and channel not in ("mms", "whatsapp"):
        raise bad_request(
            f'mediaUrls: only the "mms" and "whatsapp" channels carry media, not "{channel}"',
            field="mediaUrls",
        )
    if request.template is not None and channel != "whatsapp":
        raise bad_request(
            f'template: only "whatsapp" messages use templates, not "{channel}"', field="template"
        )
    if request.port is not None and channel != "data":
        raise bad_request('port: only "data" messages have a port', field="port")
    if channel == "data":
        if not text:
            raise bad_request(
                "message: a data message needs its payload in base64", field="message"
            )
        if not request.is_encrypted:
            try:
                payload = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise bad_request("message: is not valid base64", field="message") from exc
            if not 1 <= len(payload) <= MAX_DATA_BYTES:
                raise bad_request(
                    f"message: a data message carries 1 to {MAX_DATA_BYTES} bytes, "
                    f"this one {len(payload)}",
                    field="message",
                )
        return text, request.port or DEFAULT_DATA_PORT
    if channel == "whatsapp" and (request.template is not None or request.media_urls):
        _check_whatsapp_extras(request)
    elif channel == "mms":
        _check_media_urls(request.media_urls, "an mms message")
    elif text is None or not text.strip():
        raise bad_request(f"message: is required for {channel} messages", field="message")
    if text is not None:
        limit = MAX_ENCRYPTED_LENGTH if request.is_encrypted else MAX_TEXT_LENGTH[channel]
        if len(text) > limit:
            raise bad_request(
                f"message: at most {limit} characters for {channel}, this one has {len(text)}",
                field="message",
            )
    return text, None


def _check_media_urls(urls: list[str] | None, what: str) -> None:
    if not urls:
        raise bad_request(f"mediaUrls: {what} needs at least one media URL", field="mediaUrls")
    if len(urls) > MAX_MEDIA_URLS:
        raise bad_request(f"mediaUrls: at most {MAX_MEDIA_URLS} URLs", field="mediaUrls")
    for index, url in enumerate(urls):
        _check_media_url(url, f"mediaUrls[{index}]")


def _check_whatsapp_extras(request: SendRequest) -> None:
    """A WhatsApp message is text, media (`message` is the caption of the first file) or a
    template."""
    if request.template is not None:
        if request.media_urls or request.message:
            raise bad_request(
                "template: a template message carries its content in the template; "
                "leave out message and mediaUrls (put values in template.components)",
                field="template",
            )
        return
    _check_media_urls(request.media_urls, "a media message")
    if request.message is not None and len(request.message) > MAX_CAPTION_LENGTH:
        raise bad_request(
            f"message: a media caption has at most {MAX_CAPTION_LENGTH} characters, "
            f"this one has {len(request.message)}",
            field="message",
        )


def _check_media_url(url: str, field: str) -> None:
    parts = urlsplit(url)
    if len(url) > MAX_URL_LENGTH or parts.scheme != "https" or not parts.hostname:
        raise bad_request(f'{field}: "{url[:100]}" is not an https URL', field=field)


def _valid_until(request: SendRequest, now: datetime) -> datetime | None:
    if request.ttl is not None and request.valid_until is not None:
        raise bad_request(
            "ttl and validUntil cannot be used together; send one of them", field="ttl"
        )
    if request.ttl is not None:
        if request.ttl > MAX_TTL_SECONDS:
            raise bad_request(f"ttl: at most {MAX_TTL_SECONDS} seconds (30 days)", field="ttl")
        return now + timedelta(seconds=request.ttl)
    if request.valid_until is not None:
        if request.valid_until.tzinfo is None:
            raise bad_request(
                "validUntil: needs a time zone, such as 2026-01-01T00:00:00Z", field="validUntil"
            )
        value = clock.as_utc(request.valid_until)
        if value <= now:
            raise bad_request(f"validUntil: {clock.iso(value)} is in the past", field="validUntil")
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    return None


def _schedule_at(
    request: SendRequest, now: datetime, valid_until: datetime | None
) -> datetime | None:
    """When the send may be handed to a phone: a future time, up to a year ahead, before the
    message expires."""
    if request.schedule_at is None:
        return None
    if request.schedule_at.tzinfo is None:
        raise bad_request(
            "scheduleAt: needs a time zone, such as 2026-01-01T09:00:00-06:00", field="scheduleAt"
        )
    value = clock.as_utc(request.schedule_at)
    value = value.replace(microsecond=value.microsecond // 1000 * 1000)
    if value <= now:
        raise bad_request(f"scheduleAt: {clock.iso(value)} is in the past", field="scheduleAt")
    if value > now + MAX_SCHEDULE_AHEAD:
        raise bad_request("scheduleAt: at most a year ahead", field="scheduleAt")
    if valid_until is not None and value >= valid_until:
        raise bad_request(
            f"scheduleAt: {clock.iso(value)} is not before the message expires "
            f"({clock.iso(valid_until)}); schedule it earlier or let it live longer",
            field="scheduleAt",
        )
    return value


def prepare_message(
    account_id: str, region: str, request: SendRequest, *, validate_numbers: bool = True
) -> PreparedMessage:
    """Validate a send completely, without the database, and turn it into the rows to write."""
    now = clock.now()
    numbers = _recipients(request, region, validate_numbers)
    content, port = _check_content(request)
    valid_until = _valid_until(request, now)
    schedule_at = _schedule_at(request, now, valid_until)
    # what usage counts: an SMS's parts; one for a data SMS, an MMS, a WhatsApp message, and an
    # encrypted SMS (whose text the server cannot read)
    encoding: str | None = None
    segment_count = 1
    if request.channel == "sms" and content is not None and not request.is_encrypted:
        info = segments.count(content)
        encoding, segment_count = info.encoding, info.segments
    message_id = new_id()
    message: dict[str, Any] = {
        "id": message_id,
        "account_id": account_id,
        "direction": "out",
        "channel": request.channel,
        "state": states.PROCESSING,
        "device_id": request.device_id,
        "content": content,
        "data_port": port,
        "media_urls": request.media_urls,
        "template": request.template.model_dump(exclude_none=True) if request.template else None,
        "sim_number": request.sim_number,
        "priority": request.priority,
        "valid_until": valid_until,
        "schedule_at": schedule_at,
        "with_delivery_report": request.with_delivery_report,
        "is_encrypted": request.is_encrypted,
        "external_id": request.external_id,
        "request_hash": _request_hash(request) if request.external_id else None,
        "encoding": encoding,
        "segments": segment_count,
        "error": None,
        "created_at": now,
        "updated_at": now,
        "assigned_device_id": None,
        "handed_at": None,
        "acknowledged_at": None,
        "cancel_requested_at": None,
    }
    recipients = [
        {
            "id": new_id(),
            "account_id": account_id,
            "message_id": message_id,
            "position": position,
            "phone_number": number,
            "state": states.PROCESSING,
            "error": None,
            "updated_at": now,
            "conversation_id": None,
            "provider_message_id": None,
        }
        for position, number in enumerate(numbers)
    ]
    history = [history_row(account_id, message_id, states.PROCESSING, now)]
    return PreparedMessage(message, recipients, history)


async def _check_carrier(database: Database, account_id: str, request: SendRequest) -> None:
    """Refuse a send no device of the account (or the pinned one) could ever carry; one whose
    devices are only offline is accepted, and waits for them within its validity."""
    channel, device_id = request.channel, request.device_id
    if await devices.can_carry(database, account_id, channel, device_id):
        return
    if channel == "whatsapp":
        needs = "add a WhatsApp line first (POST /api/devices/whatsapp)"
    else:
        needs = (
            "the Android app (every released version) sends SMS and data SMS only; pair a "
            "phone whose app declares MMS, or send the text and a link by SMS"
        )
    who = f"device {device_id} cannot" if device_id else "no device of this account can"
    raise ApiError(
        422,
        f"channel: {who} send {channel} messages; {needs}",
        "channel_unavailable",
        extra={"field": "channel"},
    )


async def _fetch_media(
    settings: Settings, urls: Sequence[str]
) -> tuple[tuple[str | None, str, bytes], ...]:
    """An MMS's media, fetched now (as the phone will send it, base64 in `mmsMessage`)
    through the SSRF-safe client, each at most SMSGATE_MMS_ATTACHMENT_MAX_BYTES; a URL that
    cannot be fetched is the client's error, and nothing is stored."""
    files = []
    async with httpx.AsyncClient() as client:
        for index, url in enumerate(urls):
            try:
                data, kind = await safe_http.fetch(
                    client,
                    url,
                    allow_private=settings.webhooks_allow_private,
                    time_limit=settings.webhook_timeout_seconds,
                    max_bytes=settings.mms_attachment_max_bytes,
                )
            except safe_http.FetchFailed as exc:
                raise ApiError(
                    422,
                    f"mediaUrls[{index}]: {url[:200]} {exc}",
                    "media_unavailable",
                    extra={"field": f"mediaUrls[{index}]"},
                ) from exc
            name = url.rsplit("/", 1)[-1].split("?", 1)[0][:255] or None
            files.append((name, kind, data))
    return tuple(files)


async def _check_storage(
    database: Database,
    account_id: str,
    plan: plans.Plan,
    files: Sequence[tuple[str | None, str, bytes]],
) -> None:
    """An MMS's media is kept with it: refused when it would pass the plan's storage."""
    if plan.storage_bytes is None:
        return
    async with database.reading() as session:
        used = await attachments.stored_bytes(session, account_id)
    wanted = sum(len(data) for _, _, data in files)
    if used + wanted > plan.storage_bytes:
        raise ApiError(
            402,
            f"plan {plan.name} keeps {plan.storage_mb} MB of files and this account keeps "
            f"{used / attachments.MIB:.1f} MB; this MMS's {wanted / attachments.MIB:.1f} MB do "
            "not fit: delete old messages or change plan",
            "storage_quota",
            extra={"limitMb": plan.storage_mb, "usedBytes": used},
        )


def _check_line(device_type: str, device_id: str, channel: str) -> None:
    """WhatsApp goes only to WhatsApp lines, everything else only to Android phones."""
    if (channel == "whatsapp") != (device_type == "whatsapp"):
        what = "a WhatsApp line" if device_type == "whatsapp" else "an Android phone"
        needs = "a WhatsApp line" if channel == "whatsapp" else "an Android phone"
        raise bad_request(
            f"deviceId: {device_id} is {what}; {channel} messages need {needs}",
            "wrong_device_type",
            "deviceId",
        )


async def queue_message(
    database: Database,
    writer: SendWriter,
    principal: Principal,
    request: SendRequest,
    *,
    validate_numbers: bool = True,
) -> tuple[dict[str, Any], bool]:
    """Accept a send (`store_message`) and answer it in our API's shape: the message and
    whether it was created (False: a replay of its externalId)."""
    stored = await store_message(
        database, writer, principal, request, validate_numbers=validate_numbers
    )
    return message_out(stored.row, stored.recipients), stored.created


async def store_message(
    database: Database,
    writer: SendWriter,
    principal: Principal,
    request: SendRequest,
    *,
    validate_numbers: bool = True,
) -> Stored:
    """Accept a send: validate, check the device, store once (group commit). Returns the
    stored rows: the new message and its recipients as written, or a replay's original (a 409
    when the replay's request differs)."""
    plan = plans.get(principal.plan, database.settings.plans_file, database.settings.default_plan)
    if request.channel not in plan.channels:
        raise ApiError(
            402,
            f"plan {plan.name} does not include {request.channel} messages; "
            f"it includes {', '.join(plan.channels)}",
            "channel_not_in_plan",
        )
    prepared = prepare_message(
        principal.account_id, principal.region, request, validate_numbers=validate_numbers
    )
    if not request.is_encrypted:
        numbers = [r["phone_number"] for r in prepared.recipients]
        abuse.check_destinations(numbers, principal.countries or frozenset({principal.region}))
        sequential.check(principal.account_id, numbers)
    period_start, resets_at, day = usage.buckets(principal.anchor, prepared.message["created_at"])
    quota = Quota(
        principal.account_id,
        plan.name,
        plan.messages_per_period,
        period_start,
        resets_at,
        day,
        {},
    )
    # built directly: dataclasses.replace reads the class's fields on every call
    prepared = PreparedMessage(prepared.message, prepared.recipients, prepared.history, quota)
    if request.device_id is not None:
        device_type = await device_types.get(database, principal.account_id, request.device_id)
        _check_line(device_type, request.device_id, request.channel)
    if request.channel in ("mms", "whatsapp"):  # channels not every device carries
        await _check_carrier(database, principal.account_id, request)
        if request.channel == "mms" and request.media_urls:
            files = await _fetch_media(database.settings, request.media_urls)
            await _check_storage(database, principal.account_id, plan, files)
            prepared = PreparedMessage(
                prepared.message, prepared.recipients, prepared.history, quota, files
            )
    try:
        # a send pinned to a device joins its threads in the writer's batch (the line is known)
        stored = await writer.store(prepared)
    except IntegrityError as exc:
        # The only reference a send can break is its device, deleted after the check above.
        if request.device_id is None:
            raise
        raise not_found("device", "deviceId") from exc
    if not stored.created and stored.row["request_hash"] != prepared.message["request_hash"]:
        raise ApiError(
            409,
            f'externalId "{request.external_id}" was already used for a different message '
            f"({stored.row['id']}); use a new externalId or repeat the original request exactly",
            "idempotency_conflict",
            extra={"messageId": stored.row["id"]},
        )
    return stored


def announce(hub: Hub, account_id: str, request: SendRequest, created: bool) -> None:
    """Wake the phones (or the one it is pinned to) for a send they can take now; a replay
    wakes no one, and a scheduled send is announced by the jobs pass when it falls due."""
    if created and request.schedule_at is None:
        hub.publish(account_id, request.device_id, Event(MESSAGE_ENQUEUED))


async def _present(session: AsyncSession, row: Row, *, with_history: bool) -> dict[str, Any]:
    recipients = (
        (
            await session.execute(
                select(recipients_table)
                .where(recipients_table.c.message_id == row["id"])
                .order_by(recipients_table.c.position)
            )
        )
        .mappings()
        .all()
    )
    history: Sequence[Row] | None = None
    if with_history:
        history = (
            (
                await session.execute(
                    select(history_table)
                    .where(history_table.c.message_id == row["id"])
                    .order_by(history_table.c.id)
                )
            )
            .mappings()
            .all()
        )
    files = await _attachments(session, [row])
    return message_out(row, recipients, history, files.get(row["id"]))


async def _owned_row(session: AsyncSession, account_id: str, message_id: str) -> Row:
    if not is_id(message_id):
        raise not_found("message")
    row = (
        (
            await session.execute(
                select(messages_table).where(
                    messages_table.c.account_id == account_id, messages_table.c.id == message_id
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise not_found("message")
    return row


async def get_message(session: AsyncSession, account_id: str, message_id: str) -> dict[str, Any]:
    row = await _owned_row(session, account_id, message_id)
    return await _present(session, row, with_history=True)


async def cancel_message(
    session: AsyncSession, account_id: str, message_id: str
) -> tuple[dict[str, Any], str | None]:
    """Cancel a message no phone has taken; for one a phone holds, ask that phone.

    Returns the message and, when a phone must be asked, its device id (the message stays
    `processing` with `cancelRequested` until the phone reports it cancelled or sent).
    """
    row = await _owned_row(session, account_id, message_id)
    m, r = messages_table, recipients_table
    now = clock.now()
    changed = await session.execute(
        update(m)
        .where(
            m.c.id == row["id"], m.c.state == states.PROCESSING, m.c.assigned_device_id.is_(None)
        )
        .values(state=states.CANCELLED, updated_at=now)
    )
    if changed.rowcount == 1:  # type: ignore[attr-defined]
        numbers = (
            (
                await session.execute(
                    update(r)
                    .where(r.c.message_id == row["id"], r.c.state == states.PROCESSING)
                    .values(state=states.CANCELLED, updated_at=now)
                    .returning(r.c.phone_number)
                )
            )
            .scalars()
            .all()
        )
        await session.execute(
            insert(history_table),
            [
                history_row(account_id, row["id"], states.CANCELLED, now, phone_number=number)
                for number in [*numbers, None]
            ],
        )
        return await get_message(session, account_id, message_id), None
    requested = (
        await session.execute(
            update(m)
            .where(
                m.c.id == row["id"],
                m.c.state == states.PROCESSING,
                m.c.assigned_device_id.is_not(None),
            )
            .values(cancel_requested_at=func.coalesce(m.c.cancel_requested_at, now))
            .returning(m.c.assigned_device_id)
        )
    ).scalar()
    if requested is None:
        raise ApiError(
            409,
            f"this message can no longer be cancelled: it is {row['state']}",
            "not_cancellable",
        )
    return await get_message(session, account_id, message_id), str(requested)


@dataclass(frozen=True)
class MessageFilter:
    direction: str | None = None
    state: str | None = None
    device_id: str | None = None
    phone_number: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_messages(
    session: AsyncSession, account_id: str, filters: MessageFilter, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, one page; the cursor is the id of the last message of the previous page."""
    m = messages_table
    query = select(m).where(m.c.account_id == account_id)
    if filters.direction:
        query = query.where(m.c.direction == filters.direction)
    if filters.state:
        query = query.where(m.c.state == filters.state)
    if filters.device_id:
        query = query.where(m.c.device_id == filters.device_id)
    if filters.since:
        query = query.where(m.c.created_at >= filters.since)
    if filters.until:
        query = query.where(m.c.created_at < filters.until)
    if filters.phone_number:
        r = recipients_table
        query = query.where(
            exists().where(r.c.message_id == m.c.id, r.c.phone_number == filters.phone_number)
        )
    if cursor:
        query = query.where(m.c.id < cursor)
    rows = (await session.execute(query.order_by(m.c.id.desc()).limit(limit + 1))).mappings().all()
    page, more = rows[:limit], len(rows) > limit
    by_message: dict[str, list[Row]] = {row["id"]: [] for row in page}
    if page:
        recipient_rows = (
            await session.execute(
                select(recipients_table)
                .where(recipients_table.c.message_id.in_(list(by_message)))
                .order_by(recipients_table.c.message_id, recipients_table.c.position)
            )
        ).mappings()
        for recipient in recipient_rows:
            by_message[recipient["message_id"]].append(recipient)
    files = await _attachments(session, page)
    data = [message_out(row, by_message[row["id"]], None, files.get(row["id"])) for row in page]
    return data, (page[-1]["id"] if more else None)


async def _attachments(
    session: AsyncSession, rows: Sequence[Row]
) -> dict[str, list[dict[str, Any]]]:
    """Descriptions of received files (MMS, WhatsApp), for the rows that can have them."""
    ids = [r["id"] for r in rows if r["channel"] in ("mms", "whatsapp") and r["direction"] == "in"]
    found = await attachments.of_messages(session, ids)
    return {
        message_id: [attachments.attachment_out(message_id, a) for a in parts]
        for message_id, parts in found.items()
    }
