"""Delivering webhooks: claim due deliveries with a lease, POST them, record what happened.

A delivery is claimed (lease of LEASE seconds, attempt counted) in one short transaction, sent
outside any transaction, and its outcome recorded in another as soon as it is known. A worker
killed between the two leaves the lease to expire and the delivery to be sent again: at least
once, at most twice.

Fairness: at most PER_WEBHOOK requests are in flight to one webhook, and a claim skips the
webhooks that have that many, so a receiver that hangs (each attempt is cut at the timeout, as
a whole) holds back only its own deliveries, never another webhook's or another account's.

A webhook that keeps failing is not given up on by a count of attempts: each delivery is
retried on SCHEDULE (about five days), and the webhook is disabled only after it has failed
for DISABLE_AFTER without a single success (or at once on 410 Gone). A disabled webhook's
undelivered events, and those that happen while it is disabled, are held, not dropped, and sent
when it is enabled again; the account's other webhooks get a `webhook:disabled` event.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import httpx
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.billing import usage
from smsgate.config import Settings
from smsgate.kit import clock, safe_http
from smsgate.kit.batching import Batcher
from smsgate.observe import WEBHOOK_LAG_SECONDS
from smsgate.storage.db import Database
from smsgate.webhooks import appformat, signing
from smsgate.webhooks.models import Delivery, DeliveryAttempt, Event, Webhook
from smsgate.webhooks.service import disable_for, secrets_of

log = logging.getLogger("smsgate.webhooks")

# Seconds before attempt 2, 3, ...: about five days in all, then the delivery fails for good
# (it stays listed, and can be retried or replayed).
SCHEDULE = (5, 300, 1800, 7200, 18000, *(36000,) * 11)
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.1
LEASE = timedelta(seconds=60)
BATCH = 200
PER_WEBHOOK = 4  # requests in flight to one endpoint at once
DISABLE_AFTER = timedelta(days=5)  # of failing without one success
MAX_RETRY_AFTER = 24 * 3600


@dataclass
class Claimed:
    delivery: Delivery
    event: Event
    webhook: Webhook


def next_delay(attempts: int, rng: random.Random | None = None) -> float:
    base = SCHEDULE[min(attempts - 1, len(SCHEDULE) - 1)]
    return base * (1 + (rng or random).uniform(-JITTER, JITTER))


def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        Delivery.status == "pending",
        Delivery.next_attempt_at <= now,
        or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
    )


async def _any_due(database: Database) -> bool:
    """Whether a delivery may be due, read without taking a lock: the idle poll runs four
    times a second, and on SQLite a claim's write transaction would make every other writer
    (the send writer's batches) wait for it, across the event-loop turns it spans."""
    async with database.reading() as session:
        found = await session.execute(select(Delivery.id).where(*_due(clock.now())).limit(1))
        return found.first() is not None


async def _claim(
    session: AsyncSession,
    limit: int,
    lease: timedelta = LEASE,
    busy: dict[str, int] | None = None,
) -> list[Claimed]:
    """Lease up to `limit` due deliveries, oldest due first, at most PER_WEBHOOK of a webhook
    counting those in flight (`busy`: webhook id -> requests in flight); a webhook that has
    that many is not read at all."""
    busy = busy or {}
    now = clock.now()
    # each webhook's oldest due deliveries, as many as it has room for: one webhook's backlog
    # cannot fill a claim while another's deliveries wait
    full = [hook_id for hook_id, count in busy.items() if count >= PER_WEBHOOK]
    rank = (
        func.row_number()
        .over(partition_by=Delivery.webhook_id, order_by=(Delivery.next_attempt_at, Delivery.id))
        .label("rank")
    )
    ranked = select(Delivery.id, Delivery.webhook_id, Delivery.next_attempt_at, rank).where(
        *_due(now)
    )
    if full:
        ranked = ranked.where(Delivery.webhook_id.not_in(full))
    inner = ranked.subquery()
    candidates = (
        await session.execute(
            select(inner.c.id, inner.c.webhook_id)
            .where(inner.c.rank <= PER_WEBHOOK)
            .order_by(inner.c.next_attempt_at)
        )
    ).all()
    taken: dict[str, int] = defaultdict(int)
    chosen: list[str] = []
    for delivery_id, hook_id in candidates:
        if len(chosen) < limit and busy.get(hook_id, 0) + taken[hook_id] < PER_WEBHOOK:
            taken[hook_id] += 1
            chosen.append(delivery_id)
    if not chosen:
        return []
    query = select(Delivery).where(Delivery.id.in_(chosen), *_due(now))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # another worker may have taken some
    due = list((await session.execute(query.order_by(Delivery.next_attempt_at))).scalars())
    if not due:
        return []
    events = {
        e.id: e
        for e in (
            await session.execute(select(Event).where(Event.id.in_({d.event_id for d in due})))
        ).scalars()
    }
    hooks = {
        w.id: w
        for w in (
            await session.execute(
                select(Webhook).where(Webhook.id.in_({d.webhook_id for d in due}))
            )
        ).scalars()
    }
    claimed = []
    for delivery in due:
        hook = hooks[delivery.webhook_id]
        if not hook.enabled:  # disabled since it was queued: kept for when it is enabled
            delivery.status = "held"
            continue
        delivery.lease_until = now + lease
        delivery.attempts += 1
        claimed.append(Claimed(delivery, events[delivery.event_id], hook))
    await session.flush()
    return claimed


@dataclass
class Result:
    claimed: Claimed
    outcome: safe_http.Outcome


async def _send(item: Claimed, client: httpx.AsyncClient, settings: Settings) -> Result:
    hook, event = item.webhook, item.event
    timestamp = int(clock.now().timestamp())
    body = signing.body_for(
        hook.format,
        event_id=event.id,
        event=event.type,
        created_at=clock.iso(event.created_at) or "",
        timestamp=timestamp,
        webhook_id=hook.client_id or hook.id,  # the id its owner registered it under
        device_id=event.device_id,
        payload=appformat.payload(event.type, event.payload)
        if hook.format == "android"
        else event.payload,
    )
    headers = signing.sign(
        hook.format,
        body,
        event_id=event.id,
        event=event.type,
        timestamp=timestamp,
        secrets_=secrets_of(hook, settings),
    )
    limit = settings.webhook_timeout_seconds
    started = clock.now()
    try:
        async with asyncio.timeout(limit):  # the whole attempt, however slowly it trickles
            outcome = await safe_http.post(
                client,
                hook.url,
                body,
                headers,
                allow_private=settings.webhooks_allow_private,
                time_limit=limit,
            )
    except TimeoutError:
        took = int((clock.now() - started).total_seconds() * 1000)
        outcome = safe_http.Outcome(None, took, None, f"timed out after {limit:g} s", None)
    return Result(item, outcome)


def _record(session: AsyncSession, result: Result, now: datetime) -> tuple[str | None, bool]:
    """Apply one outcome; returns (reason to disable the webhook at once or None, succeeded)."""
    delivery = result.claimed.delivery
    outcome = result.outcome
    session.add(
        DeliveryAttempt(
            account_id=delivery.account_id,
            delivery_id=delivery.id,
            number=delivery.attempts,
            status_code=outcome.status,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
            response_excerpt=outcome.excerpt,
        )
    )
    delivery.last_status_code = outcome.status
    delivery.lease_until = None
    delivery.updated_at = now
    status = outcome.status
    if status is not None and 200 <= status < 300:
        delivery.status = "succeeded"
        delivery.delivered_at = now
        delivery.last_error = None
        lag = (now - clock.as_utc(result.claimed.event.created_at)).total_seconds()
        WEBHOOK_LAG_SECONDS.observe(max(0.0, lag))
        return None, True
    if status is not None and 300 <= status < 400:
        delivery.last_error = f"HTTP {status}: redirects are not followed"
    elif status is not None:
        delivery.last_error = f"HTTP {status}"
    else:
        delivery.last_error = outcome.error
    if status == 410:
        delivery.status = "held"
        return f"the receiver answered 410 Gone at {clock.iso(now)}", False
    if delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = "failed"
        return None, False
    delay = next_delay(delivery.attempts)
    if status in (429, 503) and outcome.retry_after is not None:
        delay = max(delay, min(outcome.retry_after, MAX_RETRY_AFTER))
    delivery.next_attempt_at = now + timedelta(seconds=delay)
    return None, False


async def _apply(database: Database, results: list[Result]) -> list[None]:
    """Record outcomes in one transaction (outcomes landing together share it: group commit),
    with what they tell of their webhooks' health."""
    now = clock.now()
    async with database.transaction() as session:
        failed: dict[str, int] = defaultdict(int)
        succeeded: set[str] = set()
        gone: dict[str, str] = {}
        delivered: dict[str, int] = defaultdict(int)
        for result in results:
            session.add(result.claimed.delivery)
            reason, ok = _record(session, result, now)
            hook_id = result.claimed.webhook.id
            if ok:
                succeeded.add(hook_id)
                delivered[result.claimed.delivery.account_id] += 1
            else:
                failed[hook_id] += 1
            if reason:
                gone[hook_id] = reason
        await usage.anchors(session, delivered)
        for account_id, count in delivered.items():
            await usage.add(session, account_id, {"webhook_deliveries": count})
        for hook_id in succeeded:
            await session.execute(
                update(Webhook)
                .where(Webhook.id == hook_id, Webhook.failing_since.is_not(None))
                .values(consecutive_failures=0, failing_since=None)
            )
        for hook_id, count in failed.items():
            if hook_id in succeeded:
                continue
            await session.execute(
                update(Webhook)
                .where(Webhook.id == hook_id)
                .values(
                    consecutive_failures=Webhook.consecutive_failures + count,
                    failing_since=func.coalesce(Webhook.failing_since, now),
                )
            )
        await session.flush()
        failing = (
            await session.execute(
                select(Webhook)
                .where(Webhook.id.in_([h for h in failed if h not in succeeded]))
                .where(Webhook.enabled.is_(True))
                .execution_options(populate_existing=True)
            )
        ).scalars()
        for hook in failing:
            since = clock.as_utc(hook.failing_since) if hook.failing_since else now
            if hook.id in gone:
                await disable_for(session, hook, gone[hook.id])
            elif now - since >= DISABLE_AFTER:
                await disable_for(
                    session,
                    hook,
                    f"no delivery succeeded since {clock.iso(since)} "
                    f"({hook.consecutive_failures} failed attempts); its events are kept: fix "
                    "the receiver and enable it again",
                )
    return [None] * len(results)


async def _deliver(
    client: httpx.AsyncClient, settings: Settings, recorder: Batcher[Result, None], item: Claimed
) -> None:
    await recorder.submit(await _send(item, client, settings))


def _recorder(database: Database) -> Batcher[Result, None]:
    return Batcher(partial(_apply, database), "smsgate-webhook-outcomes")


async def _claim_due(
    database: Database, settings: Settings, limit: int, busy: dict[str, int]
) -> list[Claimed]:
    if limit <= 0 or not await _any_due(database):
        return []
    async with database.transaction() as session:
        return await _claim(session, limit, timedelta(seconds=settings.webhook_lease_seconds), busy)


async def deliver_due(
    database: Database, client: httpx.AsyncClient, settings: Settings, limit: int = BATCH
) -> int:
    """One round: claim what is due (at most PER_WEBHOOK of a webhook), send it, record the
    outcomes as they arrive; returns how many were claimed."""
    claimed = await _claim_due(database, settings, limit, {})
    if not claimed:
        return 0
    recorder = _recorder(database)
    try:
        await asyncio.gather(*(_deliver(client, settings, recorder, item) for item in claimed))
    finally:
        await recorder.close()
    return len(claimed)


async def deliver_forever(
    database: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    idle: float = 0.25,
    stopping: asyncio.Event | None = None,
) -> None:
    """Keep up to BATCH deliveries in flight, claiming more as soon as any lands, never more
    than PER_WEBHOOK to one webhook; until `stopping` is set (the deliveries in flight finish
    and record their outcomes first)."""
    busy: dict[str, int] = defaultdict(int)
    flying: set[asyncio.Task[None]] = set()
    recorder = _recorder(database)

    def landed(task: asyncio.Task[None], hook_id: str) -> None:
        flying.discard(task)
        busy[hook_id] -= 1
        if busy[hook_id] <= 0:
            del busy[hook_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook delivery failed", exc_info=task.exception())

    try:
        while stopping is None or not stopping.is_set():
            try:
                claimed = await _claim_due(database, settings, BATCH - len(flying), dict(busy))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("claiming webhook deliveries failed")
                claimed = []
            for item in claimed:
                hook_id = item.webhook.id
                busy[hook_id] += 1
                task = asyncio.create_task(_deliver(client, settings, recorder, item))
                flying.add(task)
                task.add_done_callback(lambda t, h=hook_id: landed(t, h))  # type: ignore[misc]
            if not claimed:
                await _pause(stopping, idle, flying)
    finally:
        if flying:
            await asyncio.gather(*flying, return_exceptions=True)
        await recorder.close()


async def _pause(
    stopping: asyncio.Event | None, idle: float, flying: Collection[asyncio.Task[None]]
) -> None:
    """Wait `idle` seconds, less if a delivery in flight lands (its webhook may have more due)
    or `stopping` is set."""
    waits: set[asyncio.Future[object]] = set(flying)  # type: ignore[arg-type]
    if stopping is not None:
        waits.add(asyncio.ensure_future(stopping.wait()))
    if not waits:
        await asyncio.sleep(idle)
        return
    stop_wait = [w for w in waits if w not in flying]
    try:
        await asyncio.wait(waits, timeout=idle, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in stop_wait:
            waiting.cancel()
