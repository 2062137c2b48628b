"""Throttles of guessing: failed attempts counted per key (an email and an address, an account,
an address that tries pairing codes, everyone at once), refused with 429 and a growing wait.

A key's failures count within WINDOW; once they reach the rule's limit, each further failure
doubles the lockout (from the rule's base, up to MAX_LOCKOUT). A success clears the keys it
names. Rows live in `login_throttles` and are written in the caller's transaction, so a failure
is counted even when the request is refused (the caller raises with `keep_changes`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.accounts.models import LoginThrottle
from smsgate.errors import ApiError
from smsgate.kit import clock
from smsgate.kit.i18n import Text, t

WINDOW = timedelta(minutes=15)
MAX_LOCKOUT = timedelta(hours=1)


@dataclass(frozen=True)
class Rule:
    key: str
    limit: int  # failures within WINDOW before the first lockout
    lockout_seconds: int  # the first lockout; each further failure doubles it


def too_many(wait: int, what: Text) -> ApiError:
    return ApiError(
        429,
        t("too many failed {what}; try again in {wait} seconds", what=what, wait=wait),
        "too_many_attempts",
        headers={"Retry-After": str(wait)},
    )


async def check(session: AsyncSession, rules: Iterable[Rule], what: Text) -> None:
    """429 while any of the keys is locked out."""
    now = clock.now()
    waits = []
    for rule in rules:
        row = await session.get(LoginThrottle, rule.key)
        if row is not None and row.locked_until is not None:
            locked_until = clock.as_utc(row.locked_until)
            if locked_until > now:
                waits.append(int((locked_until - now).total_seconds()) + 1)
    if waits:
        raise too_many(max(waits), what)


async def failed(session: AsyncSession, rules: Iterable[Rule]) -> None:
    """Count a failure against every key."""
    now = clock.now()
    for rule in rules:
        row = await session.get(LoginThrottle, rule.key)
        if row is None:
            row = LoginThrottle(key=rule.key, failures=0, window_started_at=now)
            session.add(row)
        elif now - clock.as_utc(row.window_started_at) > WINDOW and not _locked(row):
            row.failures, row.window_started_at, row.locked_until = 0, now, None
        row.failures += 1
        over = row.failures - rule.limit
        if over >= 0:
            lockout = min(timedelta(seconds=rule.lockout_seconds * 2**over), MAX_LOCKOUT)
            row.locked_until = now + lockout
    await session.flush()


async def succeeded(session: AsyncSession, rules: Iterable[Rule]) -> None:
    """Forget the failures of these keys."""
    for rule in rules:
        row = await session.get(LoginThrottle, rule.key)
        if row is not None:
            await session.delete(row)


def _locked(row: LoginThrottle) -> bool:
    return row.locked_until is not None and clock.as_utc(row.locked_until) > clock.now()
