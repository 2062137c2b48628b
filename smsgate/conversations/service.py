"""Threads: which conversation a message joins, unread counts, read marks; and opt-outs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, Table, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from smsgate.config import Settings
from smsgate.conversations import contacts, search
from smsgate.conversations.models import Conversation, OptOut
from smsgate.errors import ApiError, bad_request, not_found
from smsgate.kit import clock, phones
from smsgate.kit.i18n import t
from smsgate.kit.ids import is_id, new_id
from smsgate.messages import states
from smsgate.messages.models import messages_table, recipients_table
from smsgate.storage.db import insert_ignoring_conflicts
from smsgate.storage.tenancy import of_account, owned

FAMILIES = {"sms": "sms", "mms": "sms", "data": "sms", "whatsapp": "whatsapp"}
PREVIEW = 160
CHUNK = 5000  # contacts a statement (SQLite allows 32,766 parameters)
conversations_table: Table = Conversation.__table__  # type: ignore[assignment]
opt_outs_table = OptOut.__table__


@dataclass(frozen=True, slots=True)
class Joining:
    """One recipient's copy of a message, to be put in its thread by `join`."""

    recipient_id: str
    account_id: str
    contact: str
    channel: str
    sim_number: int | None
    message_id: str
    direction: str  # "in" or "out"
    preview: str | None
    at: datetime
    # the contact's profile name (WhatsApp gives one): names a thread that has none yet
    display_name: str | None = None


_Line = tuple[str, str, str]  # account, subscriber (kit.phones.subscriber), family


@dataclass(slots=True)
class _Thread:
    id: str
    sim_key: int
    last: str  # its last message id, "" when it has none
    new: bool = False  # started by this join (inserted whole by `_make`)
    # what this join brings it: a name for it, inbound copies (unread), its newest copy
    name: str | None = None
    unread: int = 0
    newest: Joining | None = None


_c, _r = conversations_table, recipients_table  # for the statements below
_THREADS = select(
    _c.c.id, _c.c.account_id, _c.c.subscriber, _c.c.family, _c.c.sim_key, _c.c.last_message_id
).where(
    _c.c.device_id == bindparam("device"),
    _c.c.account_id.in_(bindparam("accounts", expanding=True)),
    _c.c.subscriber.in_(bindparam("contacts", expanding=True)),
)
_ADOPT = (
    update(_c)
    .where(_c.c.id == bindparam("cid"), _c.c.sim_key == 0)
    .values(sim_key=bindparam("sim"))
    .returning(_c.c.id)
)
_NAME = (
    update(_c)
    .where(_c.c.id == bindparam("cid"), _c.c.display_name.is_(None))
    .values(display_name=bindparam("name"))
)
_JOIN = (
    update(_r)
    .where(_r.c.id == bindparam("rid"), _r.c.conversation_id.is_(None))
    .values(conversation_id=bindparam("cid"))
)
_UNREAD = (
    update(_c)
    .where(_c.c.id == bindparam("cid"))
    .values(unread_count=_c.c.unread_count + bindparam("unread", type_=Integer), archived_at=None)
)
_LAST = (
    update(_c)
    .where(
        _c.c.id == bindparam("cid"),
        or_(_c.c.last_message_id.is_(None), _c.c.last_message_id < bindparam("mid")),
    )
    .values(
        last_message_id=bindparam("mid"),
        last_message_at=bindparam("at"),
        last_preview=bindparam("preview"),
        last_direction=bindparam("direction"),
    )
)


def _new_threads(session: AsyncSession) -> Insert:
    """An INSERT of threads that does nothing for a line and contact that has one already."""
    return insert_ignoring_conflicts(
        conversations_table,
        session.get_bind().dialect.name,
        "account_id",
        "device_id",
        "sim_key",
        "subscriber",
        "family",
    )


async def join(
    session: AsyncSession, device_id: str, joinings: Sequence[Joining]
) -> dict[str, str]:
    """Put recipients' copies of messages in their threads on one line (a device), set-wide:
    a few statements however many there are. Returns the thread chosen for each recipient
    (one already in a thread stays where it is).

    A SIM only splits threads when it is known: a message with no SIM joins the line's latest
    thread with the contact; one with a SIM joins that SIM's thread, or adopts the thread whose
    SIM was unknown, or starts one. The joinings are taken in order, as if one at a time.
    An inbound copy counts as unread and brings its thread out of the archive: give inbound
    recipients only once (they are new rows), as messages/inbound.py does. Each thread's last
    message becomes the newest that joined it."""
    if not joinings:
        return {}
    # a thread is the subscriber's (+52 1 55… and +52 55… are one person); a new one shows the
    # contact as its first message wrote it
    written: dict[_Line, str] = {}
    for j in joinings:
        line = (j.account_id, phones.subscriber(j.contact), FAMILIES.get(j.channel, "sms"))
        written.setdefault(line, j.contact)
    threads = await _threads(session, device_id, set(written))
    chosen: list[_Thread] = []
    for joining in joinings:
        family = FAMILIES.get(joining.channel, "sms")
        line = (joining.account_id, phones.subscriber(joining.contact), family)
        thread = await _thread_for(session, threads.setdefault(line, []), joining.sim_number)
        thread.last = max(thread.last, joining.message_id)
        if joining.display_name and thread.name is None:
            thread.name = joining.display_name[:200]
        if joining.direction == "in":
            thread.unread += 1
        if thread.newest is None or joining.message_id > thread.newest.message_id:
            thread.newest = joining
        chosen.append(thread)
    made = {(line, t.sim_key): t for line, known in threads.items() for t in known if t.new}
    # a thread this join inserts is inserted whole (name, unread count, last message): only the
    # threads that existed (or that another transaction made first) are updated below
    inserted = await _make(session, device_id, made, written) if made else set()
    existing = {t.id: t for t in chosen if id(t) not in inserted}
    names = {tid: t.name for tid, t in sorted(existing.items()) if t.name}
    if names:
        await session.execute(_NAME, [{"cid": k, "name": v} for k, v in names.items()])
    await session.execute(
        _JOIN,
        [
            {"rid": joining.recipient_id, "cid": thread.id}
            for joining, thread in zip(joinings, chosen, strict=True)
        ],
    )
    # threads in one order, so that two transactions on PostgreSQL never wait on each other
    unread = [{"cid": tid, "unread": t.unread} for tid, t in sorted(existing.items()) if t.unread]
    if unread:
        await session.execute(_UNREAD, unread)
    if existing:
        await session.execute(
            _LAST, [_last_message(t.newest, cid=tid) for tid, t in sorted(existing.items())]
        )
    return {
        joining.recipient_id: thread.id for joining, thread in zip(joinings, chosen, strict=True)
    }


def _last_message(joining: Joining | None, **more: Any) -> dict[str, Any]:
    """A thread's last-message columns, from its newest copy (every chosen thread has one)."""
    assert joining is not None
    return {
        "mid": joining.message_id,
        "at": joining.at,
        "preview": (joining.preview or "")[:PREVIEW] or None,
        "direction": joining.direction,
        **more,
    }


async def _thread_for(session: AsyncSession, known: list[_Thread], sim: int | None) -> _Thread:
    """The thread a message on this SIM (None: unknown) joins among a line's threads; a new
    one is added to `known`."""
    if sim:
        for thread in known:
            if thread.sim_key == sim:
                return thread
        for thread in known:
            if thread.sim_key == 0 and (thread.new or await _adopt(session, thread.id, sim)):
                thread.sim_key = sim
                return thread
    elif known:
        return max(known, key=lambda thread: thread.last)  # one with no message is the oldest
    thread = _Thread(id=new_id(), sim_key=sim or 0, last="", new=True)
    known.append(thread)
    return thread


async def _adopt(session: AsyncSession, thread_id: str, sim: int) -> bool:
    """A thread started while the SIM was unknown takes the SIM now known (unless another
    transaction gave it one first)."""
    return (await session.execute(_ADOPT, {"cid": thread_id, "sim": sim})).first() is not None


async def _make(
    session: AsyncSession,
    device_id: str,
    made: dict[tuple[_Line, int], _Thread],
    written: dict[_Line, str],
) -> set[int]:
    """Insert the threads this join started, each whole: its name, unread count and last
    message. Returns the threads (by `id()`) that it inserted. Another transaction may have made
    the same line's thread meanwhile (PostgreSQL; on SQLite the transaction holds the write lock
    from its first statement): that one wins, its id is taken from the database, and the caller
    updates it like any thread that existed."""
    inserted: set[int] = set()
    for _ in range(3):
        now = clock.now()
        rows = []
        for ((account, key, family), sim_key), thread in sorted(made.items()):
            last = _last_message(thread.newest)
            rows.append(
                {
                    "id": thread.id,
                    "account_id": account,
                    "device_id": device_id,
                    "sim_key": sim_key,
                    "contact": written[(account, key, family)],
                    "subscriber": key,
                    "family": family,
                    "display_name": thread.name,
                    "unread_count": thread.unread,
                    "last_message_id": last["mid"],
                    "last_message_at": last["at"],
                    "last_preview": last["preview"],
                    "last_direction": last["direction"],
                    "created_at": now,
                }
            )
        stored_ids = set(
            (await session.execute(_new_threads(session).returning(_c.c.id), rows)).scalars()
        )
        inserted |= {id(t) for t in made.values() if t.id in stored_ids}
        lost = {key: t for key, t in made.items() if t.id not in stored_ids}
        if not lost:
            return inserted
        stored = await _threads(session, device_id, {line for line, _ in lost})
        missing = {}
        for (line, sim_key), thread in lost.items():
            ids = [t.id for t in stored.get(line, []) if t.sim_key == sim_key]
            if ids:
                thread.id = ids[0]
            else:  # the winner has adopted a SIM since: start the thread again
                thread.id = new_id()
                missing[(line, sim_key)] = thread
        if not missing:
            return inserted
        made = missing
    raise RuntimeError("could not make a conversation thread (conflicting writers)")


async def _threads(
    session: AsyncSession, device_id: str, lines: set[_Line]
) -> dict[_Line, list[_Thread]]:
    """Every thread of these lines (a subscriber on this device, any SIM)."""
    accounts = sorted({account for account, _, _ in lines})
    contacts = sorted({contact for _, contact, _ in lines})
    found: dict[_Line, list[_Thread]] = {}
    for start in range(0, len(contacts), CHUNK):
        rows = await session.execute(
            _THREADS,
            {
                "device": device_id,
                "accounts": accounts,
                "contacts": contacts[start : start + CHUNK],
            },
        )
        for thread_id, account, key, family, sim_key, last in rows.all():
            line = (account, key, family)
            if line in lines:
                found.setdefault(line, []).append(_Thread(thread_id, sim_key, last or ""))
    return found


async def join_outbound(session: AsyncSession, message_ids: Iterable[str], device_id: str) -> None:
    """Recipients of outbound messages join their threads once their line (device) is known."""
    ids = list(message_ids)
    if ids:
        await join(session, device_id, await outbound_joinings(session, ids))


async def outbound_joinings(session: AsyncSession, message_ids: list[str]) -> list[Joining]:
    """The Joinings of outbound messages' recipients not yet in a thread, oldest first."""
    m, r = messages_table, recipients_table
    rows = await session.execute(
        select(
            r.c.id.label("recipient_id"),
            r.c.phone_number,
            m.c.id.label("message_id"),
            m.c.account_id,
            m.c.channel,
            m.c.sim_number,
            m.c.content,
            m.c.created_at,
        )
        .join(m, m.c.id == r.c.message_id)
        .where(m.c.id.in_(message_ids), r.c.conversation_id.is_(None), m.c.direction == "out")
        .order_by(m.c.id, r.c.position)
    )
    return [sent(**row) for row in rows.mappings()]


async def leave(session: AsyncSession, message_ids: Sequence[str]) -> None:
    """Recipients of outbound messages still waiting to be sent leave their threads: their
    message went back to the queue, and the line that sends it will put them in its own
    threads (join_outbound). A thread whose latest message left shows its latest remaining one
    again (or none)."""
    if not message_ids:
        return
    leaving = (
        await session.execute(
            select(_r.c.id, _r.c.conversation_id).where(
                _r.c.message_id.in_(list(message_ids)),
                _r.c.state == states.PROCESSING,
                _r.c.conversation_id.is_not(None),
            )
        )
    ).all()
    if not leaving:
        return
    await session.execute(
        update(_r).where(_r.c.id.in_([row.id for row in leaving])).values(conversation_id=None)
    )
    m = messages_table
    threads = sorted({row.conversation_id for row in leaving})
    stale = (
        await session.execute(
            select(_c.c.id).where(_c.c.id.in_(threads), _c.c.last_message_id.in_(message_ids))
        )
    ).scalars()
    for thread_id in stale.all():
        latest = (
            await session.execute(
                select(m.c.id, m.c.created_at, m.c.content, m.c.direction)
                .join(_r, _r.c.message_id == m.c.id)
                .where(_r.c.conversation_id == thread_id)
                .order_by(m.c.id.desc())
                .limit(1)
            )
        ).first()
        await session.execute(
            update(_c)
            .where(_c.c.id == thread_id)
            .values(
                last_message_id=latest.id if latest else None,
                last_message_at=latest.created_at if latest else None,
                last_preview=((latest.content or "")[:PREVIEW] or None) if latest else None,
                last_direction=latest.direction if latest else None,
            )
        )


def sent(
    *,
    recipient_id: str,
    phone_number: str,
    message_id: str,
    account_id: str,
    channel: str,
    sim_number: int | None,
    content: str | None,
    created_at: datetime,
) -> Joining:
    """The Joining of an outbound message's recipient."""
    return Joining(
        recipient_id=recipient_id,
        account_id=account_id,
        contact=phone_number,
        channel=channel,
        sim_number=sim_number,
        message_id=message_id,
        direction="out",
        preview=content,
        at=created_at,
    )


async def get(session: AsyncSession, account_id: str, conversation_id: str) -> Conversation:
    found = (
        await session.execute(
            owned(select(Conversation), Conversation, account_id, conversation_id)
        )
    ).scalar()
    if found is None:
        raise not_found("conversation")
    return found


def list_query(
    account_id: str,
    *,
    limit: int,
    cursor: str | None,
    unread: bool,
    query: str | None,
    archived: bool,
) -> Select[Any]:
    """The statement of a page of the account's threads (tests read its plan: #32)."""
    c = Conversation
    select_ = of_account(select(c), c, account_id).where(c.last_message_id.is_not(None))
    select_ = select_.where(c.archived_at.is_not(None) if archived else c.archived_at.is_(None))
    if unread:
        select_ = select_.where(c.unread_count > 0)
    if query:
        select_ = select_.where(search.matching(query))
    if cursor:
        select_ = select_.where(c.last_message_id < cursor)
    return select_.order_by(c.last_message_id.desc()).limit(limit)


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
    statement = list_query(
        account_id,
        limit=limit + 1,
        cursor=cursor,
        unread=unread,
        query=query,
        archived=archived,
    )
    rows = list((await session.execute(statement)).scalars())
    page = rows[:limit]
    return page, (page[-1].last_message_id if len(rows) > limit else None)


async def messages_page(
    session: AsyncSession, conversation: Conversation, limit: int, cursor: str | None
) -> tuple[list[tuple[Any, Any]], str | None]:
    """The thread's messages, newest first, each with this thread's recipient row; new
    messages arrive above page one, so walking the cursor never skips or repeats one."""
    query = thread_query(conversation.id, conversation.account_id, cursor, limit + 1)
    rows = (await session.execute(query)).mappings().all()
    page = rows[:limit]
    recipient_ids = [row["recipient_row_id"] for row in page]
    recipients = {}
    if recipient_ids:
        r = recipients_table
        found = await session.execute(select(r).where(r.c.id.in_(recipient_ids)))
        recipients = {row["id"]: row for row in found.mappings().all()}
    return [(row, recipients[row["recipient_row_id"]]) for row in page], (
        page[-1]["id"] if len(rows) > limit else None
    )


def thread_query(
    conversation_id: str, account_id: str, cursor: str | None, limit: int
) -> Select[Any]:
    """A page of a thread's messages, newest first: driven from the recipients' index on
    (conversation, message), in its order, whatever the size of the tables (#32)."""
    m, r = messages_table, recipients_table
    query = (
        select(m, r.c.id.label("recipient_row_id"))
        .select_from(r.join(m, m.c.id == r.c.message_id))
        .where(r.c.conversation_id == conversation_id, m.c.account_id == account_id)
    )
    if cursor:
        query = query.where(r.c.message_id < cursor)
    return query.order_by(r.c.message_id.desc()).limit(limit)


def _in_thread(conversation: Conversation) -> Any:
    m, r = messages_table, recipients_table
    return and_(r.c.conversation_id == conversation.id, r.c.message_id == m.c.id)


async def _newest(session: AsyncSession, conversation: Conversation) -> str | None:
    """The id of the thread's newest message (None: it has none)."""
    r = recipients_table
    newest = select(func.max(r.c.message_id)).where(r.c.conversation_id == conversation.id)
    found: str | None = (await session.execute(newest)).scalar()
    return found


async def is_unread(session: AsyncSession, conversation: Conversation) -> bool:
    """Whether marking the thread read up to its newest message would change it (a read: a
    page that shows the thread every few seconds writes only when something arrived)."""
    newest = await _newest(session, conversation)
    behind = newest is not None and (conversation.read_up_to_id or "") < newest
    return behind or conversation.unread_count > 0


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
    in_thread = _in_thread(conversation)
    if up_to is not None:
        if not is_id(up_to):
            raise not_found("message")
        member = await session.execute(select(m.c.id).where(in_thread, m.c.id == up_to))
        if member.first() is None:
            raise not_found("message")
    else:
        up_to = await _newest(session, conversation)
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


def conversation_out(conversation: Conversation, contact_name: str | None = None) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "contact": conversation.contact,
        "displayName": conversation.display_name,
        "contactName": contact_name,
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


def reply_fields(conversation: Conversation) -> dict[str, Any]:
    """What a reply in the thread is sent with (the rest of a send's fields are the caller's):
    the thread's phone, SIM and channel family, to its contact. A thread whose phone was deleted
    takes no reply: from another phone it would come from another number (409)."""
    if conversation.device_id is None:
        raise ApiError(
            409,
            t(
                "this conversation's phone was deleted: write to {contact} from another phone",
                contact=conversation.contact,
            ),
            "device_deleted",
        )
    return {
        "channel": "whatsapp" if conversation.family == "whatsapp" else "sms",
        "phoneNumbers": [conversation.contact],
        "deviceId": conversation.device_id,
        "simNumber": conversation.sim_key or None,
    }


async def threads_out(
    session: AsyncSession, threads: Sequence[Conversation]
) -> list[dict[str, Any]]:
    """Threads as the API shows them, each with its contact's name (one query)."""
    if not threads:
        return []
    names = await contacts.names(session, threads[0].account_id, [c.subscriber for c in threads])
    return [conversation_out(c, names.get(c.subscriber)) for c in threads]


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
            "subscriber",
        ).values(
            id=new_id(),
            account_id=account_id,
            phone_number=number,
            subscriber=phones.subscriber(number),
            source=source,
            keyword=keyword,
            created_at=clock.now(),
        )
    )


async def remove_opt_out(session: AsyncSession, account_id: str, number: str) -> bool:
    gone = await session.execute(
        delete(OptOut).where(
            OptOut.account_id == account_id, OptOut.subscriber == phones.subscriber(number)
        )
    )
    return bool(gone.rowcount)  # type: ignore[attr-defined]


async def list_opt_outs(
    session: AsyncSession, account_id: str, limit: int, cursor: str | None
) -> tuple[list[OptOut], str | None]:
    if cursor is not None and not is_id(cursor):
        raise bad_request(t("cursor: is not a cursor this API returned"), field="cursor")
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
