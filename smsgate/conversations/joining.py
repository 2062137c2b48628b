"""A message joins its thread: one per account, subscriber and family (SMS or WhatsApp),
found or made for a whole batch at once, its preview and unread count kept."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from smsgate.conversations.service import FAMILIES, PREVIEW, conversations_table
from smsgate.kit import clock, phones
from smsgate.kit.ids import new_id
from smsgate.messages import states
from smsgate.messages.models import messages_table, recipients_table
from smsgate.storage.db import insert_ignoring_conflicts

CHUNK = 5000  # contacts a statement (SQLite allows 32,766 parameters)
_c, _r = conversations_table, recipients_table  # for the statements below


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
