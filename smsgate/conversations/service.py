"""Threads: which conversation a message joins, unread counts, read marks; and opt-outs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from smsgate.config import Settings
from smsgate.conversations.models import Conversation, OptOut
from smsgate.errors import bad_request, not_found
from smsgate.kit import clock
from smsgate.kit.ids import is_id, new_id
from smsgate.messages.models import messages_table, recipients_table
from smsgate.storage.db import insert_ignoring_conflicts
from smsgate.storage.tenancy import of_account, owned

FAMILIES = {"sms": "sms", "mms": "sms", "data": "sms", "whatsapp": "whatsapp"}
PREVIEW = 160
CHUNK = 5000  # contacts a statement (SQLite allows 32,766 parameters)
conversations_table: Table = Conversation.__table__  # type: ignore[assignment]
opt_outs_table = OptOut.__table__


def _new_threads(session: AsyncSession) -> Insert:
    """An INSERT of threads that does nothing for a line and contact that has one already."""
    return insert_ignoring_conflicts(
        conversations_table,
        session.get_bind().dialect.name,
        "account_id",
        "device_id",
        "sim_key",
        "contact",
        "family",
    )


async def _resolve(
    session: AsyncSession,
    account_id: str,
    device_id: str,
    sim_number: int | None,
    contact: str,
    family: str,
) -> str:
    """The conversation of a line and a contact. A SIM only splits threads when it is known:
    an unknown SIM joins the line's latest thread with the contact, and a thread started with an
    unknown SIM adopts the SIM when one becomes known."""
    c = Conversation
    line = and_(
        c.account_id == account_id,
        c.device_id == device_id,
        c.contact == contact,
        c.family == family,
    )
    if sim_number:
        exact = (await session.execute(select(c.id).where(line, c.sim_key == sim_number))).scalar()
        if exact:
            return str(exact)
        adopted = (
            await session.execute(
                update(c).where(line, c.sim_key == 0).values(sim_key=sim_number).returning(c.id)
            )
        ).scalar()
        if adopted:
            return str(adopted)
    else:
        latest = (
            await session.execute(
                select(c.id).where(line).order_by(c.last_message_id.desc().nulls_last()).limit(1)
            )
        ).scalar()
        if latest:
            return str(latest)
    sim_key = sim_number or 0
    await session.execute(
        _new_threads(session).values(
            id=new_id(),
            account_id=account_id,
            device_id=device_id,
            sim_key=sim_key,
            contact=contact,
            family=family,
            unread_count=0,
            created_at=clock.now(),
        )
    )
    found = await session.execute(select(c.id).where(line, c.sim_key == sim_key))
    return str(found.scalar_one())


async def join(
    session: AsyncSession,
    *,
    account_id: str,
    device_id: str,
    sim_number: int | None,
    recipient_id: str,
    contact: str,
    channel: str,
    message_id: str,
    direction: str,
    preview: str | None,
    at: datetime,
    display_name: str | None = None,
) -> str | None:
    """Put one recipient's copy of a message in its thread (once) and update the thread.

    `display_name` (the contact's profile name, as WhatsApp gives it) names a thread that has no
    name yet; a name the owner gave is never replaced."""
    family = FAMILIES.get(channel, "sms")
    conversation_id = await _resolve(session, account_id, device_id, sim_number, contact, family)
    if display_name:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.display_name.is_(None))
            .values(display_name=display_name[:200])
        )
    r = recipients_table
    joined = await session.execute(
        update(r)
        .where(r.c.id == recipient_id, r.c.conversation_id.is_(None))
        .values(conversation_id=conversation_id)
    )
    if joined.rowcount != 1:  # type: ignore[attr-defined]
        return None  # already in a thread
    c = Conversation
    values: dict[str, Any] = {}
    if direction == "in":
        values = {"unread_count": c.unread_count + 1, "archived_at": None}
    if values:
        await session.execute(update(c).where(c.id == conversation_id).values(**values))
    await session.execute(
        update(c)
        .where(
            c.id == conversation_id,
            or_(c.last_message_id.is_(None), c.last_message_id < message_id),
        )
        .values(
            last_message_id=message_id,
            last_message_at=at,
            last_preview=(preview or "")[:PREVIEW] or None,
            last_direction=direction,
        )
    )
    return conversation_id


async def join_outbound(session: AsyncSession, message_ids: Iterable[str], device_id: str) -> None:
    """Recipients of outbound messages join their threads once their line (device) is known.

    Sends that chose no SIM (nearly all) join in a few statements however many there are;
    a send pinned to a SIM goes through `join` one recipient at a time."""
    m, r = messages_table, recipients_table
    ids = list(message_ids)
    if not ids:
        return
    rows = await session.execute(
        select(
            r.c.id,
            r.c.phone_number,
            m.c.id.label("message_id"),
            m.c.account_id,
            m.c.channel,
            m.c.sim_number,
            m.c.content,
            m.c.created_at,
        )
        .join(m, m.c.id == r.c.message_id)
        .where(m.c.id.in_(ids), r.c.conversation_id.is_(None), m.c.direction == "out")
    )
    await join_sent(session, device_id, [dict(row) for row in rows.mappings()])


async def join_sent(
    session: AsyncSession, device_id: str, rows: Sequence[Mapping[str, Any]]
) -> None:
    """`join_outbound` for recipients already in hand, each a mapping of its id,
    phone_number, message_id, and its message's account_id, channel, sim_number, content and
    created_at (the send writer has them: no need to read them back)."""
    simless: list[Mapping[str, Any]] = []
    for row in rows:
        if not row["sim_number"]:
            simless.append(row)
            continue
        await join(
            session,
            account_id=row["account_id"],
            device_id=device_id,
            sim_number=row["sim_number"],
            recipient_id=row["id"],
            contact=row["phone_number"],
            channel=row["channel"],
            message_id=row["message_id"],
            direction="out",
            preview=row["content"],
            at=row["created_at"],
        )
    if simless:
        await _join_simless(session, device_id, simless)


_Line = tuple[str, str, str]  # account, contact, family


async def _join_simless(
    session: AsyncSession, device_id: str, rows: list[Mapping[str, Any]]
) -> None:
    """`join` for many outbound recipients with no SIM chosen, set-wide: each joins the line's
    latest thread with its contact (made when there is none), and each thread's last message
    becomes the newest of them."""
    wanted = {
        (row["account_id"], row["phone_number"], FAMILIES.get(row["channel"], "sms"))
        for row in rows
    }
    threads = await _latest_threads(session, device_id, wanted)
    missing = wanted - threads.keys()
    if missing:
        now = clock.now()
        await session.execute(
            _new_threads(session),
            [
                {
                    "id": new_id(),
                    "account_id": account,
                    "device_id": device_id,
                    "sim_key": 0,
                    "contact": contact,
                    "family": family,
                    "unread_count": 0,
                    "created_at": now,
                }
                for account, contact, family in sorted(missing)
            ],
        )
        threads |= await _latest_threads(session, device_id, missing)
    r, c = recipients_table, conversations_table
    joins = [
        {
            "rid": row["id"],
            "cid": threads[
                (row["account_id"], row["phone_number"], FAMILIES.get(row["channel"], "sms"))
            ],
            "mid": row["message_id"],
            "at": row["created_at"],
            "preview": (row["content"] or "")[:PREVIEW] or None,
        }
        for row in rows
    ]
    await session.execute(
        update(r)
        .where(r.c.id == bindparam("rid"), r.c.conversation_id.is_(None))
        .values(conversation_id=bindparam("cid")),
        [{"rid": j["rid"], "cid": j["cid"]} for j in joins],
    )
    await session.execute(
        update(c)
        .where(
            c.c.id == bindparam("cid"),
            or_(c.c.last_message_id.is_(None), c.c.last_message_id < bindparam("mid")),
        )
        .values(
            last_message_id=bindparam("mid"),
            last_message_at=bindparam("at"),
            last_preview=bindparam("preview"),
            last_direction="out",
        ),
        sorted(
            ({k: j[k] for k in ("cid", "mid", "at", "preview")} for j in joins),
            key=lambda j: j["mid"],
        ),
    )


async def _latest_threads(
    session: AsyncSession, device_id: str, lines: set[_Line]
) -> dict[_Line, str]:
    """The latest thread (by last message; one with none counts as oldest) of each line, on
    any SIM: what `_resolve` finds for a send with no SIM."""
    c = conversations_table
    accounts = sorted({account for account, _, _ in lines})
    contacts = sorted({contact for _, contact, _ in lines})
    best: dict[_Line, tuple[str, str]] = {}
    for start in range(0, len(contacts), CHUNK):
        found = await session.execute(
            select(c.c.id, c.c.account_id, c.c.contact, c.c.family, c.c.last_message_id).where(
                c.c.device_id == device_id,
                c.c.account_id.in_(accounts),
                c.c.contact.in_(contacts[start : start + CHUNK]),
            )
        )
        for thread_id, account, contact, family, last in found.all():
            line = (account, contact, family)
            if line in lines and (line not in best or (last or "") > best[line][0]):
                best[line] = (last or "", thread_id)
    return {line: thread_id for line, (_, thread_id) in best.items()}


async def get(session: AsyncSession, account_id: str, conversation_id: str) -> Conversation:
    found = (
        await session.execute(
            owned(select(Conversation), Conversation, account_id, conversation_id)
        )
    ).scalar()
    if found is None:
        raise not_found("conversation")
    return found


async def list_page(
    session: AsyncSession,
    account_id: str,
    *,
    limit: int,
    cursor: str | None,
    unread: bool,
    query: str | None,
    archived: bool,
) -> tuple[list[Conversation], str | None]:
    """By last activity, newest first; the cursor is the last thread's last message id."""
    c = Conversation
    select_ = of_account(select(c), c, account_id).where(c.last_message_id.is_not(None))
    select_ = select_.where(c.archived_at.is_not(None) if archived else c.archived_at.is_(None))
    if unread:
        select_ = select_.where(c.unread_count > 0)
    if query:
        pattern = f"%{query.lower()}%"
        select_ = select_.where(
            or_(func.lower(c.contact).like(pattern), func.lower(c.display_name).like(pattern))
        )
    if cursor:
        select_ = select_.where(c.last_message_id < cursor)
    rows = list(
        (
            await session.execute(select_.order_by(c.last_message_id.desc()).limit(limit + 1))
        ).scalars()
    )
    page = rows[:limit]
    return page, (page[-1].last_message_id if len(rows) > limit else None)


async def messages_page(
    session: AsyncSession, conversation: Conversation, limit: int, cursor: str | None
) -> tuple[list[tuple[Any, Any]], str | None]:
    """The thread's messages, newest first, each with this thread's recipient row; new
    messages arrive above page one, so walking the cursor never skips or repeats one."""
    m, r = messages_table, recipients_table
    query = (
        select(m, r.c.id.label("recipient_row_id"))
        .join(r, r.c.message_id == m.c.id)
        .where(r.c.conversation_id == conversation.id, m.c.account_id == conversation.account_id)
    )
    if cursor:
        query = query.where(m.c.id < cursor)
    rows = (await session.execute(query.order_by(m.c.id.desc()).limit(limit + 1))).mappings().all()
    page = rows[:limit]
    recipient_ids = [row["recipient_row_id"] for row in page]
    recipients = {}
    if recipient_ids:
        found = await session.execute(select(r).where(r.c.id.in_(recipient_ids)))
        recipients = {row["id"]: row for row in found.mappings().all()}
    return [(row, recipients[row["recipient_row_id"]]) for row in page], (
        page[-1]["id"] if len(rows) > limit else None
    )


async def mark_read(
    session: AsyncSession, conversation: Conversation, up_to: str | None
) -> Conversation:
    """Read up to a message (default: the newest); the unread count is recounted under the
    thread's row lock, so concurrent arrivals are never lost or double counted."""
    c, m, r = Conversation, messages_table, recipients_table
    locked = select(c).where(c.id == conversation.id)
    if session.get_bind().dialect.name == "postgresql":
        locked = locked.with_for_update()
    conversation = (await session.execute(locked)).scalar_one()
    await session.refresh(conversation)
    in_thread = and_(r.c.conversation_id == conversation.id, r.c.message_id == m.c.id)
    if up_to is not None:
        if not is_id(up_to):
            raise not_found("message")
        member = await session.execute(select(m.c.id).where(in_thread, m.c.id == up_to))
        if member.first() is None:
            raise not_found("message")
    else:
        up_to = (await session.execute(select(func.max(m.c.id)).where(in_thread))).scalar()
    if up_to is not None and (conversation.read_up_to_id or "") < up_to:
        conversation.read_up_to_id = up_to
    unread = await session.execute(
        select(func.count())
        .select_from(r.join(m, r.c.message_id == m.c.id))
        .where(
            r.c.conversation_id == conversation.id,
            m.c.direction == "in",
            m.c.id > (conversation.read_up_to_id or ""),
        )
    )
    conversation.unread_count = int(unread.scalar_one())
    await session.flush()
    return conversation


def conversation_out(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "contact": conversation.contact,
        "displayName": conversation.display_name,
        "deviceId": conversation.device_id,
        "simNumber": conversation.sim_key or None,
        "channel": conversation.family,
        "lastMessageId": conversation.last_message_id,
        "lastMessagePreview": conversation.last_preview,
        "lastMessageDirection": conversation.last_direction,
        "lastMessageAt": clock.iso(conversation.last_message_at),
        "unreadCount": conversation.unread_count,
        "readUpTo": conversation.read_up_to_id,
        "archived": conversation.archived_at is not None,
        "createdAt": clock.iso(conversation.created_at),
    }


# --- opt-outs -------------------------------------------------------------------------------


def _keyword(text: str) -> str:
    return re.sub(r"\s+", "", text).upper().strip(".!¡¿?")


def keywords(csv: str) -> frozenset[str]:
    return frozenset(_keyword(k) for k in csv.split(",") if k.strip())


async def apply_keywords(
    session: AsyncSession, account_id: str, number: str, text: str | None, settings: Settings
) -> str | None:
    """An inbound STOP-like word opts the number out, a START-like word back in."""
    if not text or len(text) > 40:
        return None
    word = _keyword(text)
    if word in keywords(settings.opt_out_keywords):
        await add_opt_out(session, account_id, number, "inbound", word)
        return "opted_out"
    if word in keywords(settings.opt_in_keywords):
        await remove_opt_out(session, account_id, number)
        return "opted_in"
    return None


async def add_opt_out(
    session: AsyncSession, account_id: str, number: str, source: str, keyword: str | None
) -> None:
    await session.execute(
        insert_ignoring_conflicts(
            opt_outs_table,  # type: ignore[arg-type]
            session.get_bind().dialect.name,
            "account_id",
            "phone_number",
        ).values(
            id=new_id(),
            account_id=account_id,
            phone_number=number,
            source=source,
            keyword=keyword,
            created_at=clock.now(),
        )
    )


async def remove_opt_out(session: AsyncSession, account_id: str, number: str) -> bool:
    gone = await session.execute(
        delete(OptOut).where(OptOut.account_id == account_id, OptOut.phone_number == number)
    )
    return bool(gone.rowcount)  # type: ignore[attr-defined]


async def list_opt_outs(
    session: AsyncSession, account_id: str, limit: int, cursor: str | None
) -> tuple[list[OptOut], str | None]:
    if cursor is not None and not is_id(cursor):
        raise bad_request("cursor: is not a cursor this API returned", field="cursor")
    query = of_account(select(OptOut), OptOut, account_id)
    if cursor:
        query = query.where(OptOut.id < cursor)
    rows = list(
        (await session.execute(query.order_by(OptOut.id.desc()).limit(limit + 1))).scalars()
    )
    page = rows[:limit]
    return page, (page[-1].id if len(rows) > limit else None)


def opt_out_out(entry: OptOut) -> dict[str, Any]:
    return {
        "phoneNumber": entry.phone_number,
        "source": entry.source,
        "keyword": entry.keyword,
        "createdAt": clock.iso(entry.created_at),
    }
