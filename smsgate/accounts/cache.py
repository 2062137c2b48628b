"""A short-lived, in-process cache of authenticated credentials.

Hot paths (a send, a phone's pull) must not pay a database round trip per request to learn who
is calling. An entry is served for at most `ttl` seconds after it was read from the database, so
a credential revoked by another process stops working within that time everywhere; revocations
in this process clear the account's entries as soon as they commit. After half the ttl an entry
is refreshed in the background while still being served, so busy credentials never make their
requests wait for the database; concurrent misses of one credential share one load.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from smsgate.kit import clock

if TYPE_CHECKING:
    from smsgate.accounts.service import Principal

DEFAULT_TTL_SECONDS = 1.0
MAX_ENTRIES = 20_000

Loader = Callable[[], Awaitable["Principal | None"]]


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    refresh_at: float
    expires: float


class CredentialCache:
    def __init__(self, ttl: float = DEFAULT_TTL_SECONDS, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}
        self._loading: dict[str, asyncio.Future[Principal | None]] = {}
        self._refreshes: set[asyncio.Task[None]] = set()

    @staticmethod
    def _key(credential: str) -> str:
        return hashlib.sha256(credential.encode()).hexdigest()

    def _live(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None or entry.expires < time.monotonic():
            return None
        lapses = entry.principal.expires_at
        if lapses is not None and lapses <= clock.now():
            return None
        return entry

    def get(self, credential: str) -> Principal | None:
        entry = self._live(self._key(credential)) if self.ttl > 0 else None
        return entry.principal if entry else None

    def put(self, credential: str, principal: Principal) -> None:
        self._store(self._key(credential), principal)

    def _store(self, key: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        now = time.monotonic()
        if len(self._entries) >= self.max_entries:
            self._entries = {k: e for k, e in self._entries.items() if e.expires >= now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[key] = _Entry(principal, now + self.ttl / 2, now + self.ttl)

    async def get_or_load(self, credential: str, load: Loader) -> Principal | None:
        key = self._key(credential)
        entry = self._live(key) if self.ttl > 0 else None
        if entry is not None:
            if entry.refresh_at <= time.monotonic() and key not in self._loading:
                # registered before the task first runs, so the requests that arrive meanwhile
                # see the refresh under way instead of each starting one of their own
                future = self._begin(key)
                task = asyncio.get_running_loop().create_task(self._refresh(key, load, future))
                self._refreshes.add(task)
                task.add_done_callback(self._refreshes.discard)
                task.add_done_callback(lambda _: self._abandon(key, future))
            return entry.principal
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        return await self._load(key, load, self._begin(key))

    def _abandon(self, key: str, future: asyncio.Future[Principal | None]) -> None:
        """A refresh task that ended without settling its future (cancelled before it ran)
        must not leave later misses waiting on it."""
        if not future.done():
            future.cancel()
        if self._loading.get(key) is future:
            del self._loading[key]

    def _begin(self, key: str) -> asyncio.Future[Principal | None]:
        future: asyncio.Future[Principal | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        return future

    async def _load(
        self, key: str, load: Loader, future: asyncio.Future[Principal | None]
    ) -> Principal | None:
        try:
            principal = await load()
        except BaseException as exc:
            self._entries.pop(key, None)
            future.set_exception(exc)
            future.exception()  # retrieved here, so a future nobody awaited does not warn
            raise
        finally:
            self._loading.pop(key, None)
        future.set_result(principal)
        if principal is not None:
            self._store(key, principal)
        return principal

    async def _refresh(
        self, key: str, load: Loader, future: asyncio.Future[Principal | None]
    ) -> None:
        try:
            await self._load(key, load, future)
        except Exception:  # revoked or unreachable: the entry is gone; the next request says why
            return

    def forget_account(self, account_id: str) -> None:
        """Drop every cached credential of an account (after a revocation commits)."""
        self._entries = {
            k: e for k, e in self._entries.items() if e.principal.account_id != account_id
        }


# One per process: revocations committed here clear it at once; other processes within `ttl`.
credentials = CredentialCache()
# Basic email:password credentials (the third-party API): the same `ttl`, so a changed password,
# plan or allowed country is seen within it everywhere; argon2 is not paid again on each reload
# (accounts.service.principal_from_password remembers which password matched which hash).
passwords = CredentialCache()


def forget_account(account_id: str) -> None:
    """Drop every cached credential of an account, of every kind (after a change commits)."""
    credentials.forget_account(account_id)
    passwords.forget_account(account_id)
