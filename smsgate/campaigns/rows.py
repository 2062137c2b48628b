"""A campaign's rows become sends: checked first in one pass (invalid, repeated, opted out, a
variable missing), then stored through the send path in chunks of its batch size."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.accounts.preferences import zone
from smsgate.accounts.service import Principal
from smsgate.campaigns import templates
from smsgate.campaigns.models import Template
from smsgate.conversations import contacts
from smsgate.devices.service import device_types
from smsgate.errors import ApiError, bad_request, not_found
from smsgate.kit import batching, clock, phones, sheets
from smsgate.kit.i18n import t
from smsgate.kit.sheets import Upload
from smsgate.messages.models import messages_table, recipients_table
from smsgate.messages.schemas import SendRequest, template_with_body
from smsgate.messages.sending.writer import MAX_BATCH, SendWriter
from smsgate.messages.service import store_message
from smsgate.storage.db import Database

CAMPAIGN_PRIORITY = -10  # below a send's default (0): single sends are taken first
# rejection reasons of the rows themselves (the send path's refusals add their own codes)
INVALID, OPTED_OUT, DUPLICATE, MISSING = (
    "invalid_phone_number",
    "opted_out",
    "duplicate",
    "missing_variable",
)


@dataclass(frozen=True)
class Spec:
    """What a campaign sends, when and through which devices."""

    name: str
    text: str | None = None
    template_id: str | None = None
    schedule_at: datetime | None = None
    device_ids: tuple[str, ...] = ()
    channel: str = "sms"
    draft: bool = False  # keep the rows, send nothing yet (send_draft sends them)


def schedule_in_zone(value: datetime | None, time_zone: str) -> datetime | None:
    """A scheduleAt without an offset is the account's local time."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=zone(time_zone))


async def checked(
    database: Database, principal: Principal, spec: Spec
) -> tuple[Spec, Template | None]:
    """The spec with its text resolved and everything it names checked (400/404/422)."""
    name = spec.name.strip()
    if not name:
        raise bad_request(t("name: give the campaign a name"), field="name")
    templates.check(None, None, spec.channel)
    if (spec.text is None) == (spec.template_id is None):
        raise bad_request(
            t("message: give the text (message) or a template (templateId), one of the two"),
            field="message",
        )
    template = None
    if spec.template_id is not None:
        async with database.reading() as session:
            template = await templates.get_template(
                session, principal.account_id, spec.template_id, "templateId"
            )
    text = template.text if template is not None else (spec.text or "")
    if not text.strip():
        raise bad_request(t("message: is empty"), field="message")
    for device_id in spec.device_ids:
        try:
            kind = await device_types.get(database, principal.account_id, device_id)
        except ApiError as exc:
            raise not_found("device", "deviceIds") from exc
        if (kind == "whatsapp") != (spec.channel == "whatsapp"):
            raise bad_request(
                t(
                    "deviceIds: {device_id} cannot send this campaign's {channel} messages",
                    device_id=device_id,
                    channel=spec.channel,
                ),
                "wrong_device_type",
                "deviceIds",
            )
    schedule_at = schedule_in_zone(spec.schedule_at, principal.time_zone)
    if schedule_at is not None and clock.as_utc(schedule_at) <= clock.now():
        raise bad_request(
            t("scheduleAt: {value} is in the past", value=clock.iso(clock.as_utc(schedule_at))),
            field="scheduleAt",
        )
    return replace(spec, name=name[:200], schedule_at=schedule_at), template


def check_columns(text: str, upload: Upload, need_phone: bool = True) -> str | None:
    """The upload's number column; 422 when it has none (a draft may: its number column is
    chosen when it is sent) or the text names a column it lacks."""
    column = upload.phone_column() if need_phone else upload.key(sheets.PHONE_COLUMNS)
    unknown = sheets.unknown_variables(text, upload.columns)
    if unknown and upload.rows:
        raise ApiError(
            422,
            t(
                "message: uses {names}, which no column of the rows has (they have: {value})",
                names=", ".join("{" + name + "}" for name in unknown),
                value=", ".join(upload.columns),
            ),
            MISSING,
            extra={"field": "message"},
        )
    return column


async def tag_rows(session: AsyncSession, account_id: str, tag: str) -> Upload:
    """A campaign's rows from the contacts with a tag: their number, name and fields (the
    variables a text can use); 422 when no contact has it."""
    people = await contacts.tagged(session, account_id, tag)
    if not people:
        raise ApiError(
            422,
            t('tag: no contact has the tag "{tag}"', tag=tag),
            "no_recipients",
            extra={"field": "tag"},
        )
    items = [
        {"phoneNumber": c.phone_number, "name": c.name or "", "nombre": c.name or "", **c.fields}
        for c in people
    ]
    return sheets.from_items(items)


async def _in_campaign(database: Database, account_id: str, campaign_id: str) -> set[str]:
    """The subscribers a campaign has messages for already."""
    m, r = messages_table, recipients_table
    async with database.reading() as session:
        numbers = (
            await session.execute(
                select(r.c.phone_number)
                .join(m, m.c.id == r.c.message_id)
                .where(m.c.account_id == account_id, m.c.campaign_id == campaign_id)
            )
        ).scalars()
        return {phones.subscriber(number) for number in numbers}


def _reject(row: int, number: str, reason: str) -> dict[str, Any]:
    return {"row": row, "phoneNumber": number, "reason": reason}


def _whatsapp_template(template: Template, text: str, values: dict[str, str]) -> dict[str, Any]:
    """The approved WhatsApp template a row sends: the body's parameters are the text's
    variables, in their order, filled from the row."""
    by_name = {name.strip().lower(): value for name, value in values.items()}
    bound = template.whatsapp or {}
    filled = [by_name.get(name.lower(), "") for name in sheets.variables(text)]
    return template_with_body(str(bound.get("name")), str(bound.get("language")), filled)


async def send_rows(
    database: Database,
    writer: SendWriter,
    principal: Principal,
    campaign: dict[str, Any],
    template: Template | None,
    upload: Upload,
) -> tuple[int, list[dict[str, Any]], dict[str, str]]:
    """Turn the upload's rows into the campaign's messages: how many were accepted, the rows
    rejected (each number as the row wrote it), and the names of the accepted rows (by message
    id) for the report."""
    text = template.text if template is not None else (campaign["text"] or "")
    column = check_columns(text, upload) or ""
    name_column = upload.key(sheets.NAME_COLUMNS)
    rejected: list[dict[str, Any]] = []
    seen = await _in_campaign(database, principal.account_id, campaign["id"])
    wanted: list[tuple[int, str, str, dict[str, str]]] = []
    for number_row, values in upload.rows:
        raw = values.get(column, "")
        try:
            number = phones.normalize(raw, principal.region)
        except phones.InvalidPhoneNumber:
            rejected.append(_reject(number_row, raw, INVALID))
            continue
        key = phones.subscriber(number)
        if key in seen:
            rejected.append(_reject(number_row, raw, DUPLICATE))
            continue
        seen.add(key)
        wanted.append((number_row, number, key, values))
    async with database.reading() as session:
        blocked = await contacts.opted_out(
            session, principal.account_id, [key for _, _, key, _ in wanted]
        )
    requests: list[tuple[int, str, SendRequest, str]] = []
    devices = campaign["device_ids"] or [None]
    whatsapp_bound = (
        template is not None and template.whatsapp and campaign["channel"] == "whatsapp"
    )
    for number_row, number, key, values in wanted:
        if key in blocked:
            rejected.append(_reject(number_row, values[column], OPTED_OUT))
            continue
        try:
            content = sheets.render(text, values)
        except sheets.MissingVariable:
            rejected.append(_reject(number_row, values[column], MISSING))
            continue
        body: dict[str, Any] = {
            "channel": campaign["channel"],
            "phoneNumbers": [number],
            "priority": CAMPAIGN_PRIORITY,
            "externalId": f"{campaign['id']}:{key}",
            "deviceId": devices[len(requests) % len(devices)],
        }
        if whatsapp_bound:
            assert template is not None
            body["template"] = _whatsapp_template(template, text, values)
        else:
            body["message"] = content
        if campaign["schedule_at"] is not None:
            body["scheduleAt"] = campaign["schedule_at"]
        try:
            request = SendRequest.model_validate(body)
        except ValueError:
            rejected.append(_reject(number_row, values[column], "validation_error"))
            continue
        name = values.get(name_column or "", "")
        requests.append((number_row, values[column], request, name))
    accepted = 0
    names: dict[str, str] = {}
    for chunk in batching.chunks(requests, MAX_BATCH):
        results = await asyncio.gather(
            *(
                store_message(database, writer, principal, request, campaign_id=campaign["id"])
                for _, _, request, _ in chunk
            ),
            return_exceptions=True,
        )
        for (number_row, number, _, name), result in zip(chunk, results, strict=True):
            if isinstance(result, ApiError):
                rejected.append(_reject(number_row, number, result.code))
            elif isinstance(result, BaseException):
                raise result
            elif not result.created:  # the same row, uploaded again while the first was sent
                rejected.append(_reject(number_row, number, DUPLICATE))
            else:
                accepted += 1
                if name:
                    names[result.row["id"]] = name
    rejected.sort(key=lambda item: item["row"])
    return accepted, rejected, names
