"""The device registry table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from smsgate.storage.base import Base, CreatedMixin, IdMixin, TenantMixin, UTCDateTime


class Device(IdMixin, CreatedMixin, TenantMixin, Base):
    __tablename__ = "devices"

    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(20), default="android")
    status: Mapped[str] = mapped_column(String(20), default="pending")
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
