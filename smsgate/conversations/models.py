"""Conversations, contacts and the opt-out list."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from smsgate.kit import clock
from smsgate.storage.base import Base, CreatedMixin, IdMixin, TenantMixin, UTCDateTime


class Conversation(IdMixin, CreatedMixin, TenantMixin, Base):
    """The thread between one line (a device, and its SIM when known) and one contact, on one
    channel family (`sms`: SMS, MMS and data SMS; `whatsapp`)."""

    __tablename__ = "conversations"
    account_index = False  # an index or unique constraint below starts with account_id
    __table_args__ = (
        # a thread per line, subscriber and family (the constraint on the contact as written,
        # from before, is implied by it: migration 0016 keeps it rather than rebuild the table)
        UniqueConstraint("account_id", "device_id", "sim_key", "contact", "family"),
        Index(
            "ix_conversations_account_id_device_id_sim_key_subscriber_family",
            "account_id",
            "device_id",
            "sim_key",
            "subscriber",
            "family",
            unique=True,
        ),
        Index("ix_conversations_activity", "account_id", "last_message_id"),
    )

    # null once its phone is deleted: the thread and its messages stay, read-only
    device_id: Mapped[str | None] = mapped_column(
        String(25), ForeignKey("devices.id", ondelete="SET NULL"), nullable=True
    )
    # 0 while the SIM is unknown (a single-SIM phone, or the phone chose it); else 1..3
    sim_key: Mapped[int] = mapped_column(Integer, default=0)
    contact: Mapped[str] = mapped_column(String(512))  # as the thread's first message wrote it
    subscriber: Mapped[str] = mapped_column(String(512))  # its key (kit.phones.subscriber)
    family: Mapped[str] = mapped_column(String(10))
    display_name: Mapped[str | None] = mapped_column(String(200), default=None)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_message_id: Mapped[str | None] = mapped_column(String(25), default=None)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_preview: Mapped[str | None] = mapped_column(Text, default=None)
    last_direction: Mapped[str | None] = mapped_column(String(3), default=None)
    unread_count: Mapped[int] = mapped_column(Integer, default=0)
    read_up_to_id: Mapped[str | None] = mapped_column(String(25), default=None)


class OptOut(CreatedMixin, TenantMixin, Base):
    __tablename__ = "opt_outs"
    account_index = False  # an index or unique constraint below starts with account_id
    # one entry per subscriber (kit.phones.subscriber): +52 1 55… and +52 55… are one person
    # (the constraint on the number as written is implied by it; see Conversation)
    __table_args__ = (
        UniqueConstraint("account_id", "phone_number"),
        Index("ix_opt_outs_account_id_subscriber", "account_id", "subscriber", unique=True),
    )

    id: Mapped[str] = mapped_column(String(25), primary_key=True)
    phone_number: Mapped[str] = mapped_column(String(512))  # as it was first written
    subscriber: Mapped[str] = mapped_column(String(512))
    source: Mapped[str] = mapped_column(String(20), default="api")
    keyword: Mapped[str | None] = mapped_column(String(40), default=None)


class Contact(IdMixin, CreatedMixin, TenantMixin, Base):
    """A person the account writes to: one per subscriber (kit.phones.subscriber), the number
    kept as written. Whether they opted out is read from the opt-outs, never copied here."""

    __tablename__ = "contacts"
    account_index = False  # the unique constraint below starts with account_id
    __table_args__ = (UniqueConstraint("account_id", "subscriber"),)

    name: Mapped[str | None] = mapped_column(String(200), default=None)
    phone_number: Mapped[str] = mapped_column(String(512))
    subscriber: Mapped[str] = mapped_column(String(512))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    fields: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
