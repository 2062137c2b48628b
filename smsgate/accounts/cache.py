"""A short-lived, in-process cache of authenticated credentials.

Hot paths (a send, a phone's pull) must not pay a database round trip per request to learn who
is calling. Entries live `ttl` seconds, so a credential revoked by another process stops working
within that time everywhere; in this process revocation clears the account's entries at once.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from smsgate.kit import clock

if TYPE_CHECKING:
    from smsgate.accounts.service import Principal

DEFAULT_TTL_SECONDS = 1.0
MAX_ENTRIES = 20_000


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    expires: float


class CredentialCache:
    def __init__(self, ttl: float = DEFAULT_TTL_SECONDS, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}

    @staticmethod
    def _key(credential: str) -> str:
        return hashlib.sha256(credential.encode()).hexdigest()

    def get(self, credential: str) -> Principal | None:
        if self.ttl <= 0:
            return None
        entry = self._entries.get(self._key(credential))
        if entry is None or entry.expires < time.monotonic():
            return None
        lapses = entry.principal.expires_at
        if lapses is not None and lapses <= clock.now():
            return None
        return entry.principal

    def put(self, credential: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            now = time.monotonic()
            self._entries = {k: e for k, e in self._entries.items() if e.expires >= now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[self._key(credential)] = _Entry(principal, time.monotonic() + self.ttl)

    def forget_account(self, account_id: str) -> None:
        """Drop every cached credential of an account (after a revocation commits)."""
        self._entries = {
            k: e for k, e in self._entries.items() if e.principal.account_id != account_id
        }


# One per process: revocations committed here clear it at once; other processes within `ttl`.
credentials = CredentialCache()
