"""API rate limits per credential: GCRA (a token bucket without a refill task).

Each credential may make `requests_per_minute` requests in any minute, in bursts up to that
many. On PostgreSQL the state is one row per credential, updated in a single guarded UPDATE, so
every server process shares one budget; on SQLite (one process by design) it is kept in memory.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from sqlalchemy import text

from smsgate.storage.db import Database

WINDOW = 60.0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Policy": f'"default";q={self.limit};w={int(WINDOW)}',
            "RateLimit": f'"default";r={self.remaining};t={self.reset_seconds}',
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


def _decide(tat: float, now: float, limit: int, allowed: bool) -> Decision:
    interval = WINDOW / limit
    ahead = max(0.0, tat - now)  # how far the budget is drawn into the future
    remaining = max(0, math.floor((WINDOW - ahead) / interval)) if allowed else 0
    retry = max(1, math.ceil(ahead + interval - WINDOW)) if not allowed else 0
    return Decision(allowed, limit, remaining, math.ceil(ahead), retry)


class LocalLimiter:
    def __init__(self) -> None:
        self._tat: dict[str, float] = {}

    async def hit(self, key: str, limit: int) -> Decision:
        now = time.monotonic()
        interval = WINDOW / limit
        tat = max(self._tat.get(key, now), now)
        new = tat + interval
        if new - now > WINDOW:
            return _decide(tat, now, limit, allowed=False)
        self._tat[key] = new
        if len(self._tat) > 100_000:  # forget keys whose budget is full again
            self._tat = {k: v for k, v in self._tat.items() if v > now}
        return _decide(new, now, limit, allowed=True)


class PostgresLimiter:
    ENSURE = "INSERT INTO rate_limits (key, tat) VALUES (:key, :now) ON CONFLICT (key) DO NOTHING"
    TAKE = (
        "UPDATE rate_limits SET tat = GREATEST(tat, :now) + :interval "
        "WHERE key = :key AND GREATEST(tat, :now) + :interval - :now <= :window RETURNING tat"
    )
    READ = "SELECT tat FROM rate_limits WHERE key = :key"

    def __init__(self, database: Database) -> None:
        self.database = database

    async def hit(self, key: str, limit: int) -> Decision:
        now = time.time()
        params = {"key": key, "now": now, "interval": WINDOW / limit, "window": WINDOW}
        async with self.database.engine.begin() as conn:
            await conn.execute(text(self.ENSURE), params)
            taken = (await conn.execute(text(self.TAKE), params)).scalar()
            if taken is not None:
                return _decide(float(taken), now, limit, allowed=True)
            current = (await conn.execute(text(self.READ), params)).scalar()
        return _decide(float(current or now), now, limit, allowed=False)


def limiter_for(database: Database) -> LocalLimiter | PostgresLimiter:
    return PostgresLimiter(database) if database.dialect == "postgresql" else LocalLimiter()
