"""Plans as data: read from a TOML file the operator can replace (SMSGATE_PLANS_FILE)."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

log = logging.getLogger("smsgate.billing")

DEFAULT_FILE = Path(__file__).parent / "plans.toml"
CHANNELS = ("sms", "mms", "data", "whatsapp")
LIMIT_FIELDS = (
    "messages_per_period",
    "devices",
    "webhooks",
    "api_keys",
    "requests_per_minute",
    "storage_mb",
)


@dataclass(frozen=True)
class Plan:
    id: str
    name: str
    messages_per_period: int | None
    devices: int | None
    webhooks: int | None
    api_keys: int | None
    requests_per_minute: int | None
    storage_mb: int | None
    channels: tuple[str, ...]

    @property
    def storage_bytes(self) -> int | None:
        """`storage_mb` in bytes (None: no limit)."""
        return None if self.storage_mb is None else self.storage_mb * 1024 * 1024

    def limits(self) -> dict[str, Any]:
        return {
            "messagesPerPeriod": self.messages_per_period,
            "devices": self.devices,
            "webhooks": self.webhooks,
            "apiKeys": self.api_keys,
            "requestsPerMinute": self.requests_per_minute,
            "storageMb": self.storage_mb,
            "channels": list(self.channels),
        }


def _limit(value: object, plan_id: str, field: str) -> int | None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"plan {plan_id}: {field} must be a whole number (-1 for unlimited)")
    return None if value < 0 else value


@lru_cache(maxsize=8)
def load(path: str = "") -> dict[str, Plan]:
    """Parse and check the plans file; a mistake in it stops the server with its reason."""
    source = Path(path) if path else DEFAULT_FILE
    data = tomllib.loads(source.read_text())
    plans: dict[str, Plan] = {}
    for plan_id, raw in (data.get("plans") or {}).items():
        channels = tuple(raw.get("channels", CHANNELS))
        unknown = [c for c in channels if c not in CHANNELS]
        if unknown:
            raise ValueError(f"plan {plan_id}: unknown channels {unknown}")
        limits = {field: _limit(raw.get(field, -1), plan_id, field) for field in LIMIT_FIELDS}
        plans[plan_id] = Plan(plan_id, str(raw.get("name", plan_id)), channels=channels, **limits)
    if not plans:
        raise ValueError(f"{source} defines no plans")
    return plans


def get(plan_id: str, path: str = "", default: str = "free") -> Plan:
    plans = load(path)
    if plan_id in plans:
        return plans[plan_id]
    log.warning("account plan %r is not in the plans file; using %r", plan_id, default)
    return plans.get(default) or next(iter(plans.values()))


def period(anchor: datetime, now: datetime, zone: tzinfo = UTC) -> tuple[datetime, datetime]:
    """The monthly period containing `now`, starting on the anchor's day of the month (the
    last day in shorter months), at midnight in `zone` (the account's time zone)."""
    day = anchor.astimezone(zone).day
    now = now.astimezone(zone)

    def start_of(year: int, month: int) -> datetime:
        import calendar

        last = calendar.monthrange(year, month)[1]
        return datetime(year, month, min(day, last), tzinfo=zone)

    start = start_of(now.year, now.month)
    if start > now:
        year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
        start = start_of(year, month)
    year, month = (start.year, start.month + 1) if start.month < 12 else (start.year + 1, 1)
    return start, start_of(year, month)
