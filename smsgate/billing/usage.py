"""Metering and the message quota, as plain SQL that runs the same on SQLite and PostgreSQL,
through SQLAlchemy or on the send writer's raw SQLite connection.

Metrics: `messages` (outbound, one per recipient: the quota), `messages:<channel>`,
`segments:<channel>`, `inbound:<channel>`, `webhook_deliveries`; each counted per billing period
and per day. A debit is an UPDATE guarded by `value + n <= limit`, so concurrent sends can never
together pass the quota.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import JSON, String, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from smsgate.accounts import preferences
from smsgate.billing import plans
from smsgate.errors import ApiError
from smsgate.kit import clock
from smsgate.kit.ids import new_id
from smsgate.storage.base import UTCDateTime

QUOTA_METRIC = "messages"

ENSURE = (
    "INSERT INTO usage_counters (id, account_id, kind, start, metric, value) "
    "VALUES (:id, :account_id, :kind, :start, :metric, 0) "
    "ON CONFLICT (account_id, kind, start, metric) DO NOTHING"
)
ADD = (
    "UPDATE usage_counters SET value = value + :n "
    "WHERE account_id = :account_id AND kind = :kind AND start = :start AND metric = :metric"
)
DEBIT = ADD + " AND value + :n <= :limit"
# one statement per counter, and many counters in one executemany: create or add
UPSERT = (
    "INSERT INTO usage_counters (id, account_id, kind, start, metric, value) "
    "VALUES (:id, :account_id, :kind, :start, :metric, :n) "
    "ON CONFLICT (account_id, kind, start, metric) "
    "DO UPDATE SET value = usage_counters.value + excluded.value"
)
READ = (
    "SELECT value FROM usage_counters "
    "WHERE account_id = :account_id AND kind = :kind AND start = :start AND metric = :metric"
)


@dataclass(frozen=True)
class Quota:
    """What one accepted send costs and what it may not pass."""

    account_id: str
    plan_name: str
    limit: int | None
    period_start: str
    resets_at: datetime
    day: str
    counts: dict[str, int]


def buckets(anchor: datetime | None, now: datetime, zone: str = "UTC") -> tuple[str, datetime, str]:
    """(period start, period end, day) of `now` for an account created on `anchor`, whose
    days and months are those of its time zone (an IANA name): a Mexico City account's day
    starts at 06:00 UTC. The period end is a UTC instant."""
    where = _zone(zone)
    return _buckets((anchor or now).astimezone(where).day, now.astimezone(where).date(), zone)


@lru_cache(maxsize=4096)  # every send asks; the answer changes once a day per anchor day
def _buckets(anchor_day: int, today: date, zone: str) -> tuple[str, datetime, str]:
    where = _zone(zone)
    midnight = datetime(today.year, today.month, today.day, tzinfo=where)
    start, end = plans.period(datetime(2000, 1, anchor_day, tzinfo=where), midnight, where)
    return start.date().isoformat(), end.astimezone(UTC), today.isoformat()


@lru_cache(maxsize=512)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def increments(
    account_id: str, period_start: str, day: str, counts: Mapping[str, int]
) -> list[dict[str, Any]]:
    """UPSERT parameters for each metric, in its period bucket and its day bucket."""
    out: list[dict[str, Any]] = []
    for metric, n in counts.items():
        if n:
            for kind, start in (("period", period_start), ("day", day)):
                out.append(
                    {
                        "id": new_id(),
                        "account_id": account_id,
                        "kind": kind,
                        "start": start,
                        "metric": metric,
                        "n": n,
                    }
                )
    return out


def in_lock_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Counters sorted, so concurrent transactions lock them in one order (no deadlocks)."""
    return sorted(rows, key=lambda r: (r["account_id"], r["kind"], r["start"], r["metric"]))


def debit_params(quota: Quota) -> tuple[dict[str, Any], dict[str, Any]]:
    key = {
        "account_id": quota.account_id,
        "kind": "period",
        "start": quota.period_start,
        "metric": QUOTA_METRIC,
    }
    return {**key, "id": new_id()}, {
        **key,
        "n": quota.counts[QUOTA_METRIC],
        "limit": quota.limit if quota.limit is not None else -1,
    }


def exceeded(quota: Quota, used: int) -> ApiError:
    wanted = quota.counts[QUOTA_METRIC]
    limit = quota.limit or 0
    reset = clock.iso(quota.resets_at)
    if used >= limit:
        text_ = (
            f"monthly message quota of plan {quota.plan_name} used up ({used}/{limit}); "
            f"it resets on {reset}"
        )
    else:
        text_ = (
            f"sending {wanted} messages would pass the monthly message quota of plan "
            f"{quota.plan_name} ({used}/{limit} used); it resets on {reset}"
        )
    return ApiError(
        402, text_, "quota_exceeded", extra={"used": used, "limit": limit, "resetsAt": reset}
    )


async def add(
    session: AsyncSession | AsyncConnection, account_id: str, counts: Mapping[str, int]
) -> None:
    """Count usage in the caller's transaction (received messages, webhook deliveries)."""
    anchor, zone = (await anchors(session, [account_id])).get(account_id, (None, "UTC"))
    start, _, day = buckets(anchor, clock.now(), zone)
    rows = in_lock_order(increments(account_id, start, day, counts))
    if rows:
        await session.execute(text(UPSERT), rows)


_ANCHORS = (
    text("SELECT id, created_at, region, settings FROM accounts WHERE id IN :ids")
    .bindparams(bindparam("ids", expanding=True))
    .columns(id=String(), created_at=UTCDateTime(), region=String(), settings=JSON())
)
ANCHOR_TTL = 60.0  # seconds a process keeps an account's time zone (its owner may change it)
_anchors: dict[str, tuple[datetime, str, float]] = {}


async def anchors(
    session: AsyncSession | AsyncConnection, account_ids: Iterable[str]
) -> dict[str, tuple[datetime, str]]:
    """The accounts' creation times, which their billing periods count from, and their time
    zones, whose days they count in. Each process reads them once a minute per account (an
    unknown account is left out)."""
    wanted = set(account_ids)
    now = time.monotonic()
    missing = sorted(a for a in wanted if a not in _anchors or now - _anchors[a][2] > ANCHOR_TTL)
    if missing:
        found = (await session.execute(_ANCHORS, {"ids": missing})).all()
        if len(_anchors) > 100_000:  # a bound on the memory, far above a server's accounts
            _anchors.clear()
        for account_id, created_at, region, settings in found:
            chosen = (settings or {}).get(preferences.TIME_ZONE)
            zone = str(chosen) if chosen else preferences.DEFAULT_ZONES.get(region, "UTC")
            _anchors[account_id] = (created_at, zone, now)
    return {a: _anchors[a][:2] for a in wanted if a in _anchors}


async def read_period(session: AsyncSession, account_id: str, period_start: str) -> dict[str, int]:
    rows = await session.execute(
        text(
            "SELECT metric, value FROM usage_counters "
            "WHERE account_id = :a AND kind = 'period' AND start = :s"
        ),
        {"a": account_id, "s": period_start},
    )
    return {metric: int(value) for metric, value in rows.all()}


async def read_days(
    session: AsyncSession, account_id: str, first: str, last: str
) -> dict[str, dict[str, int]]:
    rows = await session.execute(
        text(
            "SELECT start, metric, value FROM usage_counters "
            "WHERE account_id = :a AND kind = 'day' AND start >= :f AND start <= :l"
        ),
        {"a": account_id, "f": first, "l": last},
    )
    days: dict[str, dict[str, int]] = {}
    for start, metric, value in rows.all():
        days.setdefault(start, {})[metric] = int(value)
    return days
