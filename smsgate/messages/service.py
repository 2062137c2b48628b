"""Accepting sends (validated, stored once, the phones woken), cancelling and editing them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.accounts.service import Principal
from smsgate.billing import abuse, plans, usage
from smsgate.billing.usage import Quota
from smsgate.config import Settings
from smsgate.devices import service as devices
from smsgate.devices.service import device_types
from smsgate.errors import ApiError, bad_request, not_found
from smsgate.kit import batching, clock, phones, safe_http
from smsgate.kit.i18n import t
from smsgate.kit.ids import is_id
from smsgate.kit.schema import parse
from smsgate.messages import attachments, states
from smsgate.messages.models import (
    history_row,
    history_table,
    messages_table,
    recipients_table,
)
from smsgate.messages.schemas import Row, SendRequest, message_out
from smsgate.messages.sending.prepare import PreparedMessage, prepare_message
from smsgate.messages.sending.writer import SendWriter, Stored
from smsgate.notify.hub import MESSAGE_CANCELLED, MESSAGE_ENQUEUED, Event, Hub, wake_after_commit
from smsgate.storage.db import Database

sequential = abuse.SequentialGuard()  # per process
CANCEL_CHUNK = 500  # messages a statement when many are cancelled at once (a campaign)


async def _check_carrier(database: Database, account_id: str, request: SendRequest) -> None:
    """Refuse a send no device of the account (or the pinned one) could ever carry; one whose
    devices are only offline is accepted, and waits for them within its validity."""
    channel, device_id = request.channel, request.device_id
    if await devices.can_carry(database, account_id, channel, device_id):
        return
    if channel == "whatsapp":
        needs = t("add a WhatsApp line first (POST /api/devices/whatsapp)")
    else:
        needs = t(
            "the Android app (every released version) sends SMS and data SMS only; pair a "
            "phone whose app declares MMS, or send the text and a link by SMS"
        )
    who = (
        t("device {device_id} cannot", device_id=device_id)
        if device_id
        else t("no device of this account can")
    )
    raise ApiError(
        422,
        t("channel: {who} send {channel} messages; {needs}", who=who, channel=channel, needs=needs),
        "channel_unavailable",
        extra={"field": "channel"},
        for_people=t(
            "{who} send {channel} messages; add a WhatsApp line on the Devices page first",
            who=who,
            channel=channel,
        )
        if channel == "whatsapp"
        else None,
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
                    t("mediaUrls[{index}]: {value} {exc}", index=index, value=url[:200], exc=exc),
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
            t(
                "plan {plan_name} keeps {storage_mb} MB of files and this account keeps "
                "{value:.1f} MB; this MMS's {value2:.1f} MB do not fit: delete old messages or "
                "change plan",
                plan_name=plan.name,
                storage_mb=plan.storage_mb,
                value=used / attachments.MIB,
                value2=wanted / attachments.MIB,
            ),
            "storage_quota",
            extra={"limitMb": plan.storage_mb, "usedBytes": used},
        )


def _check_line(device_type: str, device_id: str, channel: str) -> None:
    """WhatsApp goes only to WhatsApp lines, everything else only to Android phones."""
    if (channel == "whatsapp") != (device_type == "whatsapp"):
        line, phone = t("a WhatsApp line"), t("an Android phone")
        what = line if device_type == "whatsapp" else phone
        needs = line if channel == "whatsapp" else phone
        raise bad_request(
            t(
                "deviceId: {device_id} is {what}; {channel} messages need {needs}",
                device_id=device_id,
                what=what,
                channel=channel,
                needs=needs,
            ),
            "wrong_device_type",
            "deviceId",
        )


async def store_message(
    database: Database,
    writer: SendWriter,
    principal: Principal,
    request: SendRequest,
    *,
    validate_numbers: bool = True,
    campaign_id: str | None = None,
) -> Stored:
    """Accept a send: validate, check the device, store once (group commit). Returns the
    stored rows: the new message and its recipients as written, or a replay's original (a 409
    when the replay's request differs)."""
    plan = plans.get(principal.plan, database.settings.plans_file, database.settings.default_plan)
    if request.channel not in plan.channels:
        raise ApiError(
            402,
            t(
                "plan {plan_name} does not include {channel} messages; it includes {value}",
                plan_name=plan.name,
                channel=request.channel,
                value=", ".join(plan.channels),
            ),
            "channel_not_in_plan",
        )
    prepared = prepare_message(
        principal.account_id, principal.region, request, validate_numbers=validate_numbers
    )
    if campaign_id is not None:
        prepared.message["campaign_id"] = campaign_id
    if not request.is_encrypted:
        numbers = [r["phone_number"] for r in prepared.recipients]
        abuse.check_destinations(numbers, principal.countries or frozenset({principal.region}))
        sequential.check(principal.account_id, [phones.subscriber(n) for n in numbers])
    period_start, resets_at, day = usage.buckets(
        principal.anchor, prepared.message["created_at"], principal.time_zone
    )
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
            t(
                'externalId "{external_id}" was already used for a different message ({id}); use '
                "a new externalId or repeat the original request exactly",
                external_id=request.external_id,
                id=stored.row["id"],
            ),
            "idempotency_conflict",
            extra={"messageId": stored.row["id"]},
        )
    return stored


def announce(hub: Hub, account_id: str, request: SendRequest, created: bool) -> None:
    """Wake the phones (or the one it is pinned to) for a send they can take now; a replay
    wakes no one, and a scheduled send is announced by the jobs pass when it falls due."""
    if created and request.schedule_at is None:
        hub.publish(account_id, request.device_id, Event(MESSAGE_ENQUEUED))


@dataclass(frozen=True, slots=True)
class Sender:
    """A send as every adapter makes it (the native and third-party APIs, the dashboard's
    forms, a thread's reply): stored once (`store_message`), then the phones that can take it
    woken (`announce`). Campaigns store their rows with `store_message` and wake once."""

    database: Database
    writer: SendWriter
    hub: Hub

    async def store(
        self, principal: Principal, request: SendRequest, *, validate_numbers: bool = True
    ) -> Stored:
        stored = await store_message(
            self.database, self.writer, principal, request, validate_numbers=validate_numbers
        )
        announce(self.hub, principal.account_id, request, stored.created)
        return stored

    async def send(self, principal: Principal, request: SendRequest) -> tuple[dict[str, Any], bool]:
        """The message in our API's shape, and whether it was created (False: a replay of
        its externalId)."""
        stored = await self.store(principal, request)
        return message_out(stored.row, stored.recipients), stored.created


def app_sender(request: Request) -> Sender:
    """The app's Sender (a route's dependency, or read by a route served lean)."""
    sender: Sender = request.app.state.sender
    return sender


AppSender = Annotated[Sender, Depends(app_sender)]


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
    files = await attachments.described(session, [row])
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


async def cancel_untaken(session: AsyncSession, account_id: str, which: Any) -> list[str]:
    """Cancel the account's messages matching `which` that are still processing and that no
    phone has taken, with their recipients and history; their ids. (What a phone holds is its
    to cancel: see cancel_message.)"""
    m, r = messages_table, recipients_table
    now = clock.now()
    ids = list(
        (
            await session.execute(
                update(m)
                .where(
                    m.c.account_id == account_id,
                    which,
                    m.c.state == states.PROCESSING,
                    m.c.assigned_device_id.is_(None),
                )
                .values(state=states.CANCELLED, updated_at=now)
                .returning(m.c.id)
            )
        ).scalars()
    )
    for chunk in batching.chunks(ids, CANCEL_CHUNK):
        numbers = (
            await session.execute(
                update(r)
                .where(r.c.message_id.in_(chunk), r.c.state == states.PROCESSING)
                .values(state=states.CANCELLED, updated_at=now)
                .returning(r.c.message_id, r.c.phone_number)
            )
        ).all()
        # each recipient's change, then the message's (the order a single cancel has always had)
        history = [
            history_row(account_id, mid, states.CANCELLED, now, phone_number=number)
            for mid, number in numbers
        ]
        history += [history_row(account_id, mid, states.CANCELLED, now) for mid in chunk]
        await session.execute(insert(history_table), history)
    return ids


async def cancel_message(
    session: AsyncSession, hub: Hub, account_id: str, message_id: str
) -> tuple[dict[str, Any], str | None]:
    """Cancel a message no phone has taken; for one a phone holds, ask that phone (it hears
    of it once this commits).

    Returns the message and, when a phone must be asked, its device id (the message stays
    `processing` with `cancelRequested` until the phone reports it cancelled or sent).
    """
    row = await _owned_row(session, account_id, message_id)
    m = messages_table
    if await cancel_untaken(session, account_id, m.c.id == row["id"]):
        return await get_message(session, account_id, message_id), None
    requested = (
        await session.execute(
            update(m)
            .where(
                m.c.id == row["id"],
                m.c.state == states.PROCESSING,
                m.c.assigned_device_id.is_not(None),
            )
            .values(cancel_requested_at=func.coalesce(m.c.cancel_requested_at, clock.now()))
            .returning(m.c.assigned_device_id)
        )
    ).scalar()
    if requested is None:
        raise ApiError(
            409,
            t("this message can no longer be cancelled: it is {state}", state=row["state"]),
            "not_cancellable",
        )
    event = Event(MESSAGE_CANCELLED, {"messageId": row["id"]})
    wake_after_commit(session, hub, account_id, str(requested), event)
    return await get_message(session, account_id, message_id), str(requested)


async def edit_scheduled(
    session: AsyncSession,
    principal: Principal,
    message_id: str,
    text: str | None,
    schedule_at: datetime | None,
) -> dict[str, Any]:
    """Change the text or the time of a scheduled send while it still waits (no phone has it,
    its time has not come). The new text and time pass the send's own checks (prepare_message);
    a text may not need more SMS parts than the one the quota counted (cancel and send again
    for a longer one). 409 `not_editable` once it is on its way."""
    row = await _owned_row(session, principal.account_id, message_id)
    now = clock.now()
    waiting = (
        row["direction"] == "out"
        and row["state"] == states.PROCESSING
        and row["assigned_device_id"] is None
        and row["cancel_requested_at"] is None
        and row["schedule_at"] is not None
        and row["schedule_at"] > now
    )
    if not waiting:
        raise ApiError(
            409,
            t("only a scheduled message still waiting for its time can be changed"),
            "not_editable",
        )
    if row["channel"] not in ("sms", "whatsapp") or row["template"] or row["is_encrypted"]:
        raise ApiError(
            409, t("only a text message can be changed; cancel it and send again"), "not_editable"
        )
    first = (
        await session.execute(
            select(recipients_table.c.phone_number)
            .where(recipients_table.c.message_id == message_id)
            .limit(1)
        )
    ).scalar_one()
    request = parse(
        SendRequest,
        {
            "channel": row["channel"],
            "phoneNumbers": [first],
            "message": row["content"] if text is None else text,
            "scheduleAt": row["schedule_at"] if schedule_at is None else schedule_at,
            "validUntil": row["valid_until"],
        },
    )
    checked = prepare_message(principal.account_id, principal.region, request).message
    if (checked["segments"] or 1) > (row["segments"] or 1):
        raise ApiError(
            422,
            t(
                "message: the new text needs {count} SMS parts and the scheduled one {value}; "
                "cancel it and send the longer text as a new message",
                count=checked["segments"],
                value=row["segments"],
            ),
            "more_segments",
            extra={"field": "message"},
        )
    await session.execute(
        update(messages_table)
        .where(messages_table.c.id == message_id, messages_table.c.assigned_device_id.is_(None))
        .values(
            content=checked["content"],
            encoding=checked["encoding"],
            segments=checked["segments"],
            schedule_at=checked["schedule_at"],
            updated_at=now,
        )
    )
    return await get_message(session, principal.account_id, message_id)
