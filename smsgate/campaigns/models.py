"""Templates and campaigns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from smsgate.kit import clock
from smsgate.storage.base import Base, CreatedMixin, IdMixin, TenantMixin, UTCDateTime


class Template(IdMixin, CreatedMixin, TenantMixin, Base):
    """A text with {variables}; optionally bound to an approved WhatsApp template."""

    __tablename__ = "templates"

    name: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(10), default="sms")
    # a WhatsApp template it stands for: {"name", "language"}
    whatsapp: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class Campaign(IdMixin, CreatedMixin, TenantMixin, Base):
    """One text to many recipients: its messages carry its id (messages.campaign_id)."""

    __tablename__ = "campaigns"
    account_index = False  # the index below starts with account_id
    __table_args__ = (Index("ix_campaigns_account_id_id", "account_id", "id"),)

    name: Mapped[str] = mapped_column(String(200))
    # draft -> scheduled -> sending -> done, or cancelled (campaigns/service.py)
    state: Mapped[str] = mapped_column(String(12), default="sending")
    channel: Mapped[str] = mapped_column(String(10), default="sms")
    text: Mapped[str | None] = mapped_column(Text, default=None)
    template_id: Mapped[str | None] = mapped_column(
        String(25), ForeignKey("templates.id", ondelete="SET NULL"), default=None, index=True
    )
    schedule_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    device_ids: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    total: Mapped[int] = mapped_column(Integer, default=0)  # rows received, every upload
    # the rows not sent: [{"row", "phoneNumber", "reason"}]
    rejected: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # the rows' names (a name or nombre column), by message id, for the report
    names: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # a draft's rows, until it is sent: {"columns": [...], "rows": [[row number, {values}]]}
    rows: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
