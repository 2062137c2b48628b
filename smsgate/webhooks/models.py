"""Webhook endpoints, the events outbox, deliveries and their attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from smsgate.kit import clock
from smsgate.storage.base import Base, CreatedMixin, IdMixin, TenantMixin, UTCDateTime


class Webhook(IdMixin, CreatedMixin, TenantMixin, Base):
    __tablename__ = "webhooks"
    account_index = False  # an index or unique constraint below starts with account_id
    __table_args__ = (UniqueConstraint("account_id", "client_id"),)

    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JSON)
    device_id: Mapped[str | None] = mapped_column(
        String(25), ForeignKey("devices.id", ondelete="CASCADE"), default=None
    )
    format: Mapped[str] = mapped_column(String(10), default="native")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, default=None)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # the first failed attempt since the last success; None while it succeeds
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # an id the client chose (the compat API's webhooks are upserted by it)
    client_id: Mapped[str | None] = mapped_column(String(36), default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class Event(IdMixin, CreatedMixin, TenantMixin, Base):
    """One thing that happened, written in the transaction that made it happen."""

    __tablename__ = "events"
    account_index = False  # an index or unique constraint below starts with account_id
    __table_args__ = (Index("ix_events_account_id_id", "account_id", "id"),)

    type: Mapped[str] = mapped_column(String(40))
    device_id: Mapped[str | None] = mapped_column(String(25), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class Delivery(IdMixin, CreatedMixin, TenantMixin, Base):
    """One event to one webhook, retried until it succeeds or its retries run out; held (kept,
    not sent) while its webhook is disabled, and sent again when the webhook is enabled."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_webhook_id_id", "webhook_id", "id"),
    )

    webhook_id: Mapped[str] = mapped_column(
        String(25), ForeignKey("webhooks.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(String(25), ForeignKey("events.id", ondelete="CASCADE"))
    # pending -> succeeded | failed (retries exhausted); pending <-> held (webhook disabled)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=clock.now)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class DeliveryAttempt(IdMixin, CreatedMixin, TenantMixin, Base):
    __tablename__ = "delivery_attempts"

    delivery_id: Mapped[str] = mapped_column(
        String(25), ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    latency_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    response_excerpt: Mapped[str | None] = mapped_column(Text, default=None)
