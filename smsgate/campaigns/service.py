"""Campaigns: one text (or template) sent to many rows, each with its variables.

Each accepted row becomes one message through the one send path (messages.service.store_message:
the same validation, quota, opt-outs and group commit as POST /api/v1/send), carrying the
campaign's id, at CAMPAIGN_PRIORITY: below an interactive send's default, so that phones take
single sends first and a big campaign never holds them back. Its externalId is the campaign's id
and the row's subscriber (`<campaign id>:+5255…`), so a row uploaded again is never sent twice.

A row is rejected, with its row number and a stable reason, when its number is invalid, opted
out, a duplicate (in the upload or the campaign already), outside the account's countries, or
when it leaves a variable of the text empty; any refusal of the send path (quota, pumping guard)
is reported the same way with that refusal's code. Nothing is dropped silently.

States: draft (the rows kept, nothing sent: `send_draft` sends them) -> scheduled (a future
scheduleAt) -> sending -> done (no message still processing), or cancelled (what no phone had
taken is cancelled). `campaign:finished` is emitted on done and
on cancel (worker/jobs.py runs `finish`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.accounts.service import Principal
from smsgate.campaigns.models import Campaign, Template
from smsgate.campaigns.rows import (
    Spec,
    check_columns,
    checked,
    send_rows,
)
from smsgate.errors import ApiError, bad_request, not_found
from smsgate.kit import clock, segments, sheets
from smsgate.kit.i18n import t
from smsgate.kit.ids import new_id
from smsgate.kit.sheets import Upload
from smsgate.messages import states
from smsgate.messages.models import history_table, messages_table, recipients_table
from smsgate.messages.sending.writer import SendWriter
from smsgate.messages.service import cancel_untaken
from smsgate.notify.hub import MESSAGE_ENQUEUED, Event, Hub
from smsgate.storage.db import Database
from smsgate.webhooks import events
from smsgate.webhooks.events import NewEvent

DRAFT, SCHEDULED, SENDING = "draft", "scheduled", "sending"
DONE, CANCELLED = "done", "cancelled"
CAMPAIGN_STATES = (DRAFT, SCHEDULED, SENDING, DONE, CANCELLED)
PREVIEW_ROWS = 3
FINISHED_EVENT = "campaign:finished"
campaigns_table: Table = Campaign.__table__  # type: ignore[assignment]


async def create(
    database: Database,
    writer: SendWriter,
    hub: Hub,
    principal: Principal,
    spec: Spec,
    upload: Upload,
) -> dict[str, Any]:
    """A new campaign, its rows sent (or scheduled) at once, or kept as a draft; its answer."""
    spec, template = await checked(database, principal, spec)
    now = clock.now()
    state = SCHEDULED if spec.schedule_at is not None else SENDING
    campaign: dict[str, Any] = {
        "id": new_id(),
        "account_id": principal.account_id,
        "name": spec.name,
        "state": DRAFT if spec.draft else state,
        "channel": spec.channel,
        "text": spec.text,
        "template_id": spec.template_id,
        "schedule_at": clock.as_utc(spec.schedule_at) if spec.schedule_at else None,
        "device_ids": list(spec.device_ids) or None,
        "total": 0,
        "rejected": [],
        "names": {},
        "rows": None,
        "created_at": now,
        "updated_at": now,
        "finished_at": None,
    }
    text = template.text if template is not None else (spec.text or "")
    check_columns(text, upload, need_phone=not spec.draft)  # before anything is stored
    if spec.draft:
        campaign["rows"] = {"columns": list(upload.columns), "rows": [list(r) for r in upload.rows]}
        campaign["total"] = len(upload.rows)
    async with database.transaction() as session:
        await session.execute(insert(campaigns_table), [campaign])
        if spec.draft:
            return await campaign_out(
                session, await _row(session, principal.account_id, campaign["id"])
            )
    return await _add(database, writer, hub, principal, campaign, template, upload)


def _stored_rows(campaign: Any) -> Upload:
    kept = campaign["rows"] or {"columns": [], "rows": []}
    return Upload(tuple(kept["columns"]), tuple((int(n), dict(v)) for n, v in kept["rows"]))


async def send_draft(
    database: Database,
    writer: SendWriter,
    hub: Hub,
    principal: Principal,
    campaign_id: str,
    schedule_at: datetime | None,
    device_ids: Sequence[str] | None,
    phone_column: str | None = None,
) -> dict[str, Any]:
    """Send a draft's rows (now, or at `schedule_at`; through `device_ids` if given), their
    numbers read from `phone_column` when given (a file whose number column has another
    name)."""
    async with database.reading() as session:
        campaign = dict(await _row(session, principal.account_id, campaign_id))
    if campaign["state"] != DRAFT:
        raise ApiError(
            409,
            t("this campaign was sent already: it is {state}", state=campaign["state"]),
            "not_a_draft",
        )
    spec = Spec(
        campaign["name"],
        campaign["text"],
        campaign["template_id"],
        schedule_at,
        tuple(dict.fromkeys(device_ids or campaign["device_ids"] or ())),
        campaign["channel"],
    )
    spec, template = await checked(database, principal, spec)
    upload = _stored_rows(campaign)
    if phone_column:
        if phone_column not in upload.columns:
            raise bad_request(
                t(
                    "phoneColumn: the file has no column {name} (it has: {value})",
                    name=phone_column,
                    value=", ".join(upload.columns),
                ),
                field="phoneColumn",
            )
        upload = upload.with_phone(phone_column)
    text = template.text if template is not None else (spec.text or "")
    check_columns(text, upload)
    c = campaigns_table
    schedule = clock.as_utc(spec.schedule_at) if spec.schedule_at else None
    async with database.transaction() as session:
        changed = await session.execute(
            update(c)
            .where(c.c.id == campaign_id, c.c.state == DRAFT)
            .values(
                state=SCHEDULED if schedule else SENDING,
                schedule_at=schedule,
                device_ids=list(spec.device_ids) or None,
                rows=None,
                total=0,
                updated_at=clock.now(),
            )
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            raise ApiError(409, t("this campaign was sent already"), "not_a_draft")
    campaign.update(
        state=SCHEDULED if schedule else SENDING,
        schedule_at=schedule,
        device_ids=list(spec.device_ids) or None,
    )
    return await _add(database, writer, hub, principal, campaign, template, upload)


def draft_preview(campaign: Any, text: str) -> dict[str, Any]:
    """A draft's first rows as they would be sent, and what the whole sends: its messages and
    SMS segments (what the plan's quota counts)."""
    upload = _stored_rows(campaign)
    column = upload.key(sheets.PHONE_COLUMNS)
    rows: list[dict[str, Any]] = []
    messages = parts = 0
    for number_row, values in upload.rows:
        try:
            content = sheets.render(text, values)
        except sheets.MissingVariable:
            continue
        info = segments.count(content)
        messages += 1
        parts += info.segments if campaign["channel"] == "sms" else 1
        if len(rows) < PREVIEW_ROWS:
            rows.append(
                {
                    "row": number_row,
                    "phoneNumber": values.get(column or "", ""),
                    "message": content,
                    "encoding": info.encoding,
                    "segments": info.segments,
                }
            )
    return {
        "rows": rows,
        "messages": messages,
        "segments": parts,
        "columns": list(upload.columns),
        "phoneColumn": column,
    }


async def add_rows(
    database: Database,
    writer: SendWriter,
    hub: Hub,
    principal: Principal,
    campaign_id: str,
    upload: Upload,
) -> dict[str, Any]:
    """More rows for a campaign (or the same file again: rows it has are duplicates)."""
    async with database.reading() as session:
        campaign = await _row(session, principal.account_id, campaign_id)
        template = (
            await session.get(Template, campaign["template_id"])
            if campaign["template_id"]
            else None
        )
    if campaign["state"] == CANCELLED:
        raise ApiError(
            409, t("this campaign was cancelled; create a new one"), "campaign_cancelled"
        )
    if campaign["state"] == DRAFT:
        raise ApiError(409, t("this campaign is a draft: send it first, then add rows"), "not_sent")
    if campaign["template_id"] is None and campaign["text"] is None:
        raise ApiError(409, t("this campaign's template was deleted"), "template_deleted")
    return await _add(database, writer, hub, principal, dict(campaign), template, upload)


async def _add(
    database: Database,
    writer: SendWriter,
    hub: Hub,
    principal: Principal,
    campaign: dict[str, Any],
    template: Template | None,
    upload: Upload,
) -> dict[str, Any]:
    """Send the upload's rows for the campaign; its answer. The account's phones are woken
    once the rows are committed, when some are to be sent now."""
    accepted, rejected, names = await send_rows(
        database, writer, principal, campaign, template, upload
    )
    c = campaigns_table
    async with database.transaction() as session:
        current = await _row(session, principal.account_id, campaign["id"])
        values: dict[str, Any] = {
            "total": current["total"] + len(upload.rows),
            "rejected": [*current["rejected"], *rejected],
            "updated_at": clock.now(),
        }
        if current["state"] == DONE and accepted:  # new rows to send: it is not done any more
            values["state"] = SENDING
            values["finished_at"] = None
        if names:
            values["names"] = {**(current["names"] or {}), **names}
        await session.execute(update(c).where(c.c.id == campaign["id"]).values(**values))
        answer = await campaign_out(
            session, await _row(session, principal.account_id, campaign["id"])
        )
    if answer["state"] == SENDING and answer["accepted"]:
        hub.publish(principal.account_id, None, Event(MESSAGE_ENQUEUED))
    return answer


async def _row(session: AsyncSession, account_id: str, campaign_id: str) -> Any:
    c = campaigns_table
    found = (
        (
            await session.execute(
                select(c).where(c.c.id == campaign_id, c.c.account_id == account_id)
            )
        )
        .mappings()
        .first()
    )
    if found is None:
        raise not_found("campaign")
    return found


async def _counts(session: AsyncSession, ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Recipients by state, per campaign."""
    m, r = messages_table, recipients_table
    counts: dict[str, dict[str, int]] = {campaign_id: {} for campaign_id in ids}
    if not ids:
        return counts
    found = await session.execute(
        select(m.c.campaign_id, r.c.state, func.count())
        .select_from(m.join(r, r.c.message_id == m.c.id))
        .where(m.c.campaign_id.in_(list(ids)))
        .group_by(m.c.campaign_id, r.c.state)
    )
    for campaign_id, state, count in found:
        counts[campaign_id][state] = count
    return counts


def _out(row: Any, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "state": row["state"],
        "channel": row["channel"],
        "message": row["text"],
        "templateId": row["template_id"],
        "deviceIds": row["device_ids"] or [],
        "total": row["total"],
        # the messages it has: counted from them, so a crash between the messages' commit and
        # the campaign's update cannot leave a figure behind
        "accepted": sum(counts.values()),
        "rejected": row["rejected"],
        "counts": counts,
        "createdAt": clock.iso(row["created_at"]),
        "scheduleAt": clock.iso(row["schedule_at"]),
        "finishedAt": clock.iso(row["finished_at"]),
    }


async def campaign_out(session: AsyncSession, row: Any) -> dict[str, Any]:
    counts = await _counts(session, [row["id"]])
    out = _out(row, counts[row["id"]])
    if row["state"] == DRAFT:
        text = row["text"]
        if text is None and row["template_id"] is not None:
            template = await session.get(Template, row["template_id"])
            text = template.text if template is not None else ""
        out["preview"] = draft_preview(row, text or "")
    return out


async def get_campaign(session: AsyncSession, account_id: str, campaign_id: str) -> dict[str, Any]:
    return await campaign_out(session, await _row(session, account_id, campaign_id))


async def list_campaigns(
    session: AsyncSession, account_id: str, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, a page at a time."""
    c = campaigns_table
    query = select(c).where(c.c.account_id == account_id)
    if cursor is not None:
        query = query.where(c.c.id < cursor)
    found = (await session.execute(query.order_by(c.c.id.desc()).limit(limit + 1))).mappings().all()
    page = found[:limit]
    counts = await _counts(session, [row["id"] for row in page])
    next_cursor = page[-1]["id"] if len(found) > limit else None
    return [_out(row, counts[row["id"]]) for row in page], next_cursor


async def cancel(session: AsyncSession, account_id: str, campaign_id: str) -> dict[str, Any]:
    """Stop a campaign: its messages no phone has taken are cancelled (those a phone holds go
    on); 409 once it is done."""
    row = await _row(session, account_id, campaign_id)
    if row["state"] == DRAFT:
        c = campaigns_table
        now = clock.now()
        await session.execute(
            update(c)
            .where(c.c.id == campaign_id)
            .values(state=CANCELLED, rows=None, updated_at=now, finished_at=now)
        )
        return await campaign_out(session, await _row(session, account_id, campaign_id))
    if row["state"] in (DONE, CANCELLED):
        raise ApiError(
            409,
            t("this campaign can no longer be cancelled: it is {state}", state=row["state"]),
            "not_cancellable",
        )
    await cancel_untaken(session, account_id, messages_table.c.campaign_id == campaign_id)
    now = clock.now()
    c = campaigns_table
    await session.execute(
        update(c)
        .where(c.c.id == campaign_id)
        .values(state=CANCELLED, updated_at=now, finished_at=now)
    )
    row = await _row(session, account_id, campaign_id)
    answer = await campaign_out(session, row)
    await events.emit(session, [_finished_event(account_id, answer)])
    return answer


def _finished_event(account_id: str, campaign: dict[str, Any]) -> NewEvent:
    payload = {
        "campaignId": campaign["id"],
        "name": campaign["name"],
        "state": campaign["state"],
        "total": campaign["total"],
        "accepted": campaign["accepted"],
        "rejected": len(campaign["rejected"]),
        "counts": campaign["counts"],
        "finishedAt": campaign["finishedAt"],
    }
    return NewEvent(account_id, FINISHED_EVENT, None, payload)  # type: ignore[arg-type]


async def finish(database: Database) -> int:
    """The periodic pass: a scheduled campaign whose time came is sending; a sending one with
    no message still processing is done (and says so: campaign:finished). How many finished."""
    c, m = campaigns_table, messages_table
    now = clock.now()
    async with database.transaction() as session:
        await session.execute(
            update(c).where(c.c.state == SCHEDULED, c.c.schedule_at <= now).values(state=SENDING)
        )
        still = exists().where(m.c.campaign_id == c.c.id, m.c.state == states.PROCESSING)
        done = (
            (await session.execute(select(c).where(c.c.state == SENDING, ~still))).mappings().all()
        )
        for row in done:
            changed = await session.execute(
                update(c)
                .where(c.c.id == row["id"], c.c.state == SENDING)
                .values(state=DONE, finished_at=now, updated_at=now)
            )
            if changed.rowcount != 1:  # type: ignore[attr-defined]
                continue
            answer = await campaign_out(session, await _row(session, row["account_id"], row["id"]))
            await events.emit(session, [_finished_event(row["account_id"], answer)])
    return len(done)


REPORT_COLUMNS = ("row", "phoneNumber", "name", "state", "error", "sentAt", "deliveredAt")


async def report(session: AsyncSession, account_id: str, campaign_id: str) -> str:
    """The campaign as CSV: every recipient with its state and times, then every rejected row
    with its reason (state `rejected`)."""
    row = await _row(session, account_id, campaign_id)
    m, r, h = messages_table, recipients_table, history_table
    recipients = (
        await session.execute(
            select(r.c.message_id, r.c.phone_number, r.c.state, r.c.error)
            .join(m, m.c.id == r.c.message_id)
            .where(m.c.account_id == account_id, m.c.campaign_id == campaign_id)
            .order_by(m.c.id, r.c.position)
        )
    ).all()
    times: dict[tuple[str, str, str], datetime] = {}
    found = await session.execute(
        select(h.c.message_id, h.c.phone_number, h.c.state, h.c.created_at)
        .join(m, m.c.id == h.c.message_id)
        .where(
            m.c.account_id == account_id,
            m.c.campaign_id == campaign_id,
            h.c.state.in_((states.SENT, states.DELIVERED)),
            h.c.phone_number.is_not(None),
        )
    )
    for message_id, number, state, at in found:
        times.setdefault((message_id, number, state), at)
    names = row["names"] or {}
    out = io.StringIO()
    sheet = csv.writer(out)
    sheet.writerow(REPORT_COLUMNS)
    for message_id, number, state, error in recipients:
        sent = times.get((message_id, number, states.SENT))
        delivered = times.get((message_id, number, states.DELIVERED))
        sheet.writerow(
            [
                "",
                number,
                names.get(message_id, ""),
                state,
                error or "",
                clock.iso(sent) or "",
                clock.iso(delivered) or "",
            ]
        )
    for rejected in row["rejected"]:
        sheet.writerow(
            [rejected["row"], rejected["phoneNumber"], "", "rejected", rejected["reason"], "", ""]
        )
    return out.getvalue()
