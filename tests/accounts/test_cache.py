"""The credential cache: one database load per credential at a time, misses and refreshes alike."""

from __future__ import annotations

import asyncio

from smsgate.accounts.cache import CredentialCache
from smsgate.accounts.service import Principal

PRINCIPAL = Principal("cacc", frozenset({"send"}), "key", "ckey", "MX")


class CountingLoader:
    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self) -> Principal | None:
        self.calls += 1
        await self.release.wait()
        return PRINCIPAL


async def test_concurrent_misses_share_one_load() -> None:
    cache = CredentialCache(ttl=60)
    loader = CountingLoader()
    waiting = [asyncio.create_task(cache.get_or_load("sk_one", loader)) for _ in range(50)]
    await asyncio.sleep(0)
    loader.release.set()
    assert await asyncio.gather(*waiting) == [PRINCIPAL] * 50
    assert loader.calls == 1


async def due_for_refresh(credential: str) -> CredentialCache:
    """A cache (ttl 0.2 s) holding `credential`, past half its ttl: due for refresh, served."""
    cache = CredentialCache(ttl=0.2)
    first = CountingLoader()
    first.release.set()
    assert await cache.get_or_load(credential, first) == PRINCIPAL
    await asyncio.sleep(0.12)
    return cache


async def test_a_due_refresh_starts_once_however_many_requests_see_it() -> None:
    # A busy credential's requests all see the entry due for refresh in the same loop turn:
    # they must be served from the cache while exactly one refresh reads the database.
    cache = await due_for_refresh("sk_busy")
    refresh = CountingLoader()
    answers = [await cache.get_or_load("sk_busy", refresh) for _ in range(40)]
    assert answers == [PRINCIPAL] * 40
    await asyncio.sleep(0)
    assert refresh.calls == 1
    refresh.release.set()
    await asyncio.sleep(0.01)
    assert await cache.get_or_load("sk_busy", refresh) == PRINCIPAL
    assert refresh.calls == 1  # the refreshed entry is fresh again


async def test_a_failed_refresh_drops_the_entry() -> None:
    cache = await due_for_refresh("sk_revoked")

    async def revoked() -> Principal | None:
        raise PermissionError("revoked")

    assert await cache.get_or_load("sk_revoked", revoked) == PRINCIPAL  # served while refreshing
    await asyncio.sleep(0.01)
    assert cache.get("sk_revoked") is None


async def test_a_refresh_cancelled_before_it_ran_leaves_nothing_waiting() -> None:
    cache = await due_for_refresh("sk_cut")
    assert await cache.get_or_load("sk_cut", CountingLoader()) == PRINCIPAL  # starts a refresh
    for task in list(cache._refreshes):
        task.cancel()  # shutdown, say: the task never ran
    await asyncio.sleep(0)
    await asyncio.sleep(0.1)  # the entry has expired: the next request must load, not hang
    fresh = CountingLoader()
    fresh.release.set()
    assert await asyncio.wait_for(cache.get_or_load("sk_cut", fresh), 1) == PRINCIPAL
    assert fresh.calls == 1
