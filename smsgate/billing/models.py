"""Usage counters: one row per account, bucket (a billing period or a day) and metric."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from smsgate.storage.base import Base, IdMixin, TenantMixin


class UsageCounter(IdMixin, TenantMixin, Base):
    __tablename__ = "usage_counters"
    account_index = False  # an index or unique constraint below starts with account_id
    __table_args__ = (UniqueConstraint("account_id", "kind", "start", "metric"),)

    kind: Mapped[str] = mapped_column(String(6))  # "period" or "day"
    start: Mapped[str] = mapped_column(String(10))  # the bucket's first day, YYYY-MM-DD
    metric: Mapped[str] = mapped_column(String(40))
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class RateLimitState(Base):
    """GCRA state per credential (global: keyed by the credential, shared by all processes)."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    tat: Mapped[float] = mapped_column(Float)  # theoretical arrival time, Unix seconds
