"""Messages, their recipients and their state history."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from smsgate.kit import clock, ids
from smsgate.kit.ids import new_id
from smsgate.storage.base import (
    Base,
    CreatedMixin,
    IdMixin,
    Selective,
    TenantMixin,
    UTCDateTime,
)


class Message(IdMixin, CreatedMixin, TenantMixin, Base):
    __tablename__ = "messages"
    account_index = False  # an index or unique constraint below starts with account_id
    __table_args__ = (
        UniqueConstraint("account_id", "external_id"),
        Index("ix_messages_account_id_id", "account_id", "id"),
        Index("ix_messages_queue", "account_id", "state", "acknowledged_at"),
        # the periodic jobs' messages (all accounts, only those still being sent): a year of
        # history is never walked to find them (#32). Their queries name the state literally
        # (PROCESSING_ONLY below), so that PostgreSQL's generic plans use it too.
        Index(
            "ix_messages_processing",
            "acknowledged_at",
            sqlite_where=text("state = 'processing'"),
            postgresql_where=text("state = 'processing'"),
        ),
    )

    direction: Mapped[str] = mapped_column(String(3), default="out")
    channel: Mapped[str] = mapped_column(String(10), default="sms")
    state: Mapped[str] = mapped_column(String(12), default="processing")
    device_id: Mapped[str | None] = mapped_column(
        String(25), ForeignKey("devices.id", ondelete="SET NULL"), default=None, index=True
    )
    content: Mapped[str | None] = mapped_column(Text, default=None)
    data_port: Mapped[int | None] = mapped_column(Integer, default=None)
    media_urls: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    # a WhatsApp template message: {"name", "language", "components"}
    template: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    sim_number: Mapped[int | None] = mapped_column(Integer, default=None)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # a scheduled send: no device is handed it before then (messages/queue.py)
    schedule_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None, index=True)
    with_delivery_report: Mapped[bool] = mapped_column(Boolean, default=True)
    is_encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
    external_id: Mapped[str | None] = mapped_column(String(255), default=None)
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    encoding: Mapped[str | None] = mapped_column(String(5), default=None)
    segments: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    # dispatch: the device a message was handed to, when, and when that device first reported
    # on it (after which it is never handed to another device)
    assigned_device_id: Mapped[str | None] = mapped_column(
        String(25), ForeignKey("devices.id", ondelete="SET NULL"), default=None, index=True
    )
    handed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # the campaign it is part of (campaigns/): no foreign key, a campaign is never deleted
    # before its account, whose cascade takes both
    campaign_id: Mapped[str | None] = mapped_column(String(25), default=None, index=True)


class MessageRecipient(IdMixin, TenantMixin, Base):
    __tablename__ = "message_recipients"
    account_index = False  # an index or unique constraint below starts with account_id
    __table_args__ = (
        # a number's messages newest first, however many it has (#32)
        Index(
            "ix_message_recipients_account_number_message",
            "account_id",
            "phone_number",
            "message_id",
        ),
        # a thread's messages in id order, whatever the size of the table (#32)
        Index("ix_message_recipients_conversation_id_message_id", "conversation_id", "message_id"),
    )

    message_id: Mapped[str] = mapped_column(
        String(25), ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    phone_number: Mapped[str] = mapped_column(String(512))
    state: Mapped[str] = mapped_column(String(12), default="processing")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    # the thread this recipient's copy belongs to (known once the line is: see conversations/)
    conversation_id: Mapped[str | None] = mapped_column(
        String(25), ForeignKey("conversations.id", ondelete="SET NULL"), default=None
    )
    # the id the provider gave this copy (a WhatsApp "wamid"), to match its status callbacks
    provider_message_id: Mapped[str | None] = mapped_column(String(128), default=None, index=True)


class MessageStateChange(IdMixin, CreatedMixin, TenantMixin, Base):
    """One real transition, of the message (phone_number null) or of one recipient."""

    __tablename__ = "message_state_changes"

    message_id: Mapped[str] = mapped_column(
        String(25), ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    phone_number: Mapped[str | None] = mapped_column(String(512), default=None)
    state: Mapped[str] = mapped_column(String(12))
    error: Mapped[str | None] = mapped_column(Text, default=None)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class EarlyStatus(IdMixin, CreatedMixin, TenantMixin, Base):
    """A provider's status callback for a copy whose provider id nobody has recorded yet (Meta
    can call before the line's own report of the send lands); applied once the id is known."""

    __tablename__ = "early_statuses"
    account_index = False  # an index or unique constraint below starts with account_id
    __table_args__ = (Index("ix_early_statuses_account_provider", "account_id", "provider_id"),)

    device_id: Mapped[str] = mapped_column(
        String(25), ForeignKey("devices.id", ondelete="CASCADE"), index=True
    )
    provider_id: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(12))  # the app's name: Sent, Delivered, Failed
    error: Mapped[str | None] = mapped_column(Text, default=None)
    at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


messages_table = cast(Table, Message.__table__)
recipients_table = cast(Table, MessageRecipient.__table__)
history_table = cast(Table, MessageStateChange.__table__)
early_statuses_table = cast(Table, EarlyStatus.__table__)


class Attachment(IdMixin, CreatedMixin, TenantMixin, Base):
    """A file that came with a received MMS; kept up to a size cap, served to its owner."""

    __tablename__ = "attachments"

    message_id: Mapped[str] = mapped_column(
        String(25), ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    content_type: Mapped[str] = mapped_column(String(200), default="application/octet-stream")
    name: Mapped[str | None] = mapped_column(String(255), default=None)
    size: Mapped[int] = mapped_column(Integer, default=0)
    # None when the file was over the cap (its size and type are still recorded)
    data: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)


attachments_table = cast(Table, Attachment.__table__)

# A message's id begins with its creation time and is never earlier than its created_at
# (kit.ids); it can be later only if the host's clock stepped back between two sends. An upper
# time bound admits ids up to this much later.
ID_CLOCK_SLACK = timedelta(minutes=1)


def created_between(since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    """Messages created at `since` or later and before `until`, as conditions an index in id
    order serves (the account's (account_id, id)): the times themselves stay exact, the id
    bounds only keep the walk to the window (#32)."""
    m = messages_table
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions += [m.c.created_at >= since, Selective(m.c.id >= ids.floor(since))]
    if until is not None:
        conditions += [
            m.c.created_at < until,
            Selective(m.c.id < ids.floor(until + ID_CLOCK_SLACK)),
        ]
    return conditions


def history_row(
    account_id: str,
    message_id: str,
    state: str,
    at: datetime,
    *,
    phone_number: str | None = None,
    error: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One line of a message's state history (a recipient's when `phone_number` is given), as
    the writers insert it."""
    return {
        "id": new_id(),
        "account_id": account_id,
        "message_id": message_id,
        "phone_number": phone_number,
        "state": state,
        "error": error,
        "details": details,
        "created_at": at,
    }


# "still processing", written as a literal: the partial index ix_messages_processing applies
# where the query's own text says state = 'processing' (with a bound parameter, which could be
# any state, a PostgreSQL generic plan, used after a statement's fifth run, could not use it)
PROCESSING_ONLY = messages_table.c.state == literal_column("'processing'")
