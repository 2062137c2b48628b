"""Threads: which conversation a message joins, unread counts, read marks; and opt-outs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, Table, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.conversations import contacts, search
from smsgate.conversations.models import Conversation
from smsgate.errors import ApiError, not_found
from smsgate.kit import clock
from smsgate.kit.i18n import t
from smsgate.kit.ids import is_id
from smsgate.messages.models import messages_table, recipients_table
from smsgate.storage.tenancy import of_account, owned

FAMILIES = {"sms": "sms", "mms": "sms", "data": "sms", "whatsapp": "whatsapp"}
PREVIEW = 160
conversations_table: Table = Conversation.__table__  # type: ignore[assignment]


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
