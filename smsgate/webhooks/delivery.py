"""Delivering webhooks: claim due deliveries with a lease, POST them, record what happened.

A round claims due deliveries (lease of the configured seconds, attempt counted) in one short
transaction, sends them outside any transaction, and records in one transaction the outcomes
that landed within ROUND_WAIT. A worker killed between the two leaves the lease to expire and
the delivery to be sent again: at least once, at most twice.

Fairness: each webhook is a lane. A claim takes at most `claim_cap` of one webhook (as many as
PER_WEBHOOK at a time can send within the lease at its receiver's recent speed: a fast
receiver gets large claims, a hanging one small ones), at most PER_WEBHOOK requests go to it at
once, and a delivery that outlasts its round goes on in its lane, recorded on its own when it
lands, while the next rounds serve the other webhooks: a receiver that hangs (each attempt is
cut at the timeout, as a whole) holds back only its own lane, never another webhook's or
another account's.

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
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.billing import usage
from smsgate.config import WEBHOOK_RETRY_SCHEDULE, Settings
from smsgate.kit import clock, safe_http
from smsgate.kit.observe import WEBHOOK_LAG_SECONDS
from smsgate.storage.db import Database
from smsgate.webhooks import appformat, signing
from smsgate.webhooks.models import Delivery, DeliveryAttempt, Event, Webhook
from smsgate.webhooks.service import disable_for, secrets_of

log = logging.getLogger("smsgate.webhooks")

# Seconds before attempt 2, 3, ...: about five days in all, then the delivery fails for good
# (it stays listed, and can be retried or replayed).
SCHEDULE = WEBHOOK_RETRY_SCHEDULE  # the default of SMSGATE_WEBHOOK_RETRY_SCHEDULE
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.1
LEASE = timedelta(seconds=60)
BATCH = 200  # deliveries claimed and not yet landed, all webhooks together
PER_WEBHOOK = 4  # requests in flight to one endpoint at once
ROUND_WAIT = 1.0  # seconds a round waits for its deliveries before it records and moves on
MAX_REMEMBERED = 10_000  # webhooks whose receiver's speed the worker keeps
DISABLE_AFTER = timedelta(days=5)  # of failing without one success
MAX_RETRY_AFTER = 24 * 3600


@dataclass
class Claimed:
    delivery: Delivery
    event: Event
    webhook: Webhook


def next_delay(
    attempts: int, schedule: tuple[int, ...] = SCHEDULE, rng: random.Random | None = None
) -> float:
    base = schedule[min(attempts - 1, len(schedule) - 1)]
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


def claim_cap(settings: Settings, seconds_each: float | None = None) -> int:
    """How many deliveries of one webhook may be claimed and not sent: as many as PER_WEBHOOK
    at a time can send within the lease, with one wave to spare, each taking `seconds_each`
    (what its receiver took lately; unknown: the whole timeout). At least PER_WEBHOOK, at most
    BATCH: a fast receiver gets large claims, a hanging one small ones."""
    each = max(seconds_each or settings.webhook_timeout_seconds, 0.001)
    waves = int(settings.webhook_lease_seconds / min(each, settings.webhook_timeout_seconds)) - 1
    return min(BATCH, PER_WEBHOOK * max(1, waves))


async def _claim(
    session: AsyncSession,
    limit: int,
    lease: timedelta = LEASE,
    busy: dict[str, int] | None = None,
    caps: Callable[[str], int] = lambda _: PER_WEBHOOK,
) -> list[Claimed]:
    """Lease up to `limit` due deliveries, oldest due first, at most `caps(webhook id)` of a
    webhook counting those it already has (`busy`: webhook id -> claimed and not sent); a
    webhook past half of its cap is not claimed for."""
    busy = busy or {}
    now = clock.now()
    # a webhook past half its claim is left out in SQL, so the next claim reaches the others
    # even when one webhook's backlog fills a whole page of due deliveries
    full = [hook_id for hook_id, count in busy.items() if count > caps(hook_id) // 2]
    query = select(Delivery.id, Delivery.webhook_id).where(*_due(now))
    if full:
        query = query.where(Delivery.webhook_id.not_in(full))
    candidates = (
        await session.execute(query.order_by(Delivery.next_attempt_at).limit(limit * 2))
    ).all()
    taken: dict[str, int] = defaultdict(int)
    chosen: list[str] = []
    for delivery_id, hook_id in candidates:
        if len(chosen) < limit and busy.get(hook_id, 0) + taken[hook_id] < caps(hook_id):
            taken[hook_id] += 1
            chosen.append(delivery_id)
    if not chosen:
        return []
    rows = select(Delivery).where(Delivery.id.in_(chosen), *_due(now))
    if session.get_bind().dialect.name == "postgresql":
        rows = rows.with_for_update(skip_locked=True)  # another worker may have taken some
    due = list((await session.execute(rows.order_by(Delivery.next_attempt_at))).scalars())
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


def _record(
    session: AsyncSession, result: Result, now: datetime, schedule: tuple[int, ...]
) -> tuple[str | None, bool]:
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
    if delivery.attempts > len(schedule):
        delivery.status = "failed"
        return None, False
    delay = next_delay(delivery.attempts, schedule)
    if status in (429, 503) and outcome.retry_after is not None:
        delay = max(delay, min(outcome.retry_after, MAX_RETRY_AFTER))
    delivery.next_attempt_at = now + timedelta(seconds=delay)
    return None, False


async def _apply(
    database: Database, results: list[Result], schedule: tuple[int, ...]
) -> list[None]:
    """Record outcomes in one transaction, with what they tell of their webhooks' health."""
    now = clock.now()
    async with database.transaction() as session:
        failed: dict[str, int] = defaultdict(int)
        succeeded: set[str] = set()
        gone: dict[str, str] = {}
        delivered: dict[str, int] = defaultdict(int)
        for result in results:
            session.add(result.claimed.delivery)
            reason, ok = _record(session, result, now, schedule)
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
    client: httpx.AsyncClient, settings: Settings, lanes: _Lanes, item: Claimed
) -> Result:
    hook_id = item.webhook.id
    async with lanes.gates[hook_id]:
        lanes.started.add(item.delivery.id)
        started = time.monotonic()
        try:
            return await _send(item, client, settings)
        finally:  # its lease holds it until recorded: the lane may claim more now
            lanes.sent(hook_id, time.monotonic() - started)


async def _claim_due(
    database: Database,
    settings: Settings,
    limit: int,
    busy: dict[str, int],
    caps: Callable[[str], int],
) -> list[Claimed]:
    if limit <= 0 or not await _any_due(database):
        return []
    async with database.transaction() as session:
        lease = timedelta(seconds=settings.webhook_lease_seconds)
        return await _claim(session, limit, lease, busy, caps)


class _Lanes:
    """The deliveries claimed and not yet sent, by webhook (`busy`), the gates that keep each
    webhook to PER_WEBHOOK requests at once, and the tasks that send them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.seconds: dict[str, float] = {}  # how long each webhook's receiver took lately
        self.busy: dict[str, int] = defaultdict(int)
        self.gates: dict[str, asyncio.Semaphore] = {}
        self.tasks: dict[asyncio.Task[Result], Claimed] = {}
        self.slow: set[asyncio.Task[Result]] = set()  # outlasted their round: recorded alone
        self.started: set[str] = set()  # deliveries whose request has begun
        self.room = asyncio.Event()  # a webhook fell to half its claim: claim for it again
        self.wanting: set[str] = set()  # webhooks that asked for a claim and got none since

    def cap(self, hook_id: str) -> int:
        return claim_cap(self.settings, self.seconds.get(hook_id))

    def start(self, item: Claimed, client: httpx.AsyncClient) -> asyncio.Task[Result]:
        hook_id = item.webhook.id
        self.busy[hook_id] += 1
        self.wanting.discard(hook_id)
        self.gates.setdefault(hook_id, asyncio.Semaphore(PER_WEBHOOK))
        task = asyncio.create_task(_deliver(client, self.settings, self, item))
        self.tasks[task] = item
        task.add_done_callback(self._landed)
        return task

    def sent(self, hook_id: str, took: float) -> None:
        before = self.seconds.get(hook_id, took)
        if len(self.seconds) > MAX_REMEMBERED and hook_id not in self.seconds:
            self.seconds.clear()
        self.seconds[hook_id] = 0.7 * before + 0.3 * took
        self.busy[hook_id] -= 1
        if self.busy[hook_id] <= self.cap(hook_id) // 2 and hook_id not in self.wanting:
            self.wanting.add(hook_id)  # asks once per claim: a claim brings half a cap or more
            self.room.set()
        if self.busy[hook_id] <= 0:
            del self.busy[hook_id], self.gates[hook_id]

    def _landed(self, task: asyncio.Task[Result]) -> None:
        item = self.tasks.pop(task)
        self.started.discard(item.delivery.id)
        self.slow.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # not recorded: its lease runs out and it is sent again
            log.error("webhook delivery %s failed", item.delivery.id, exc_info=task.exception())

    async def stop(self, database: Database) -> list[Result]:
        """Let the requests under way finish and return the outcomes nobody records yet; hand
        back the claims not begun (their attempt uncounted, free to be claimed at once)."""
        waiting = [t for t, item in self.tasks.items() if item.delivery.id not in self.started]
        unsent = [self.tasks[t].delivery.id for t in waiting]
        for task in waiting:
            task.cancel()
        ours = [t for t in self.tasks if t not in self.slow]  # the slow record themselves
        await asyncio.gather(*self.tasks, return_exceptions=True)
        landed = [t.result() for t in ours if not t.cancelled() and t.exception() is None]
        if unsent:
            async with database.transaction() as session:
                await session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(unsent), Delivery.status == "pending")
                    .values(lease_until=None, attempts=Delivery.attempts - 1)
                )
        return landed


async def deliver_due(
    database: Database, client: httpx.AsyncClient, settings: Settings, limit: int = BATCH
) -> int:
    """One round: claim what is due (at most `claim_cap` of a webhook), send it
    (PER_WEBHOOK at a time to each), record the outcomes; returns how many were claimed."""
    lanes = _Lanes(settings)
    claimed = await _claim_due(database, settings, limit, {}, lanes.cap)
    if claimed:
        results = await asyncio.gather(*(lanes.start(i, client) for i in claimed))
        await _apply(database, results, settings.webhook_retries)
    return len(claimed)


async def deliver_forever(
    database: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    idle: float = 0.25,
    stopping: asyncio.Event | None = None,
) -> None:
    """Rounds while there is work: claim (each webhook up to its cap), send (each webhook
    PER_WEBHOOK at a time), and record in one transaction what landed within ROUND_WAIT.
    What has not landed by then goes on in its lane and is recorded when it lands, while the
    next rounds serve the other webhooks: a slow receiver delays its own lane only. Idle, a
    round every `idle` seconds, or sooner when a lane has room. Until `stopping` is set (the
    requests under way finish and are recorded first)."""
    lanes = _Lanes(settings)
    late: set[asyncio.Task[list[None]]] = set()  # recording deliveries that outlasted a round

    def record_late(task: asyncio.Task[Result]) -> None:
        if not task.cancelled() and task.exception() is None:
            recording = asyncio.create_task(
                _apply(database, [task.result()], settings.webhook_retries)
            )
            late.add(recording)
            recording.add_done_callback(late.discard)
            recording.add_done_callback(_log_failure)

    try:
        while stopping is None or not stopping.is_set():
            lanes.room.clear()
            try:
                room = BATCH - len(lanes.tasks)
                claimed = await _claim_due(database, settings, room, dict(lanes.busy), lanes.cap)
                if claimed:
                    tasks = [lanes.start(item, client) for item in claimed]
                    done, slow = await asyncio.wait(tasks, timeout=ROUND_WAIT)
                    for task in slow:
                        lanes.slow.add(task)
                        task.add_done_callback(record_late)
                    await _apply(
                        database,
                        [t.result() for t in done if t.exception() is None],
                        settings.webhook_retries,
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("a webhook delivery round failed")
                claimed = []
            if not claimed:
                await _pause(stopping, idle, lanes.room)
    finally:
        landed = await lanes.stop(database)
        if landed:
            await _apply(database, landed, settings.webhook_retries)
        await asyncio.gather(*late, return_exceptions=True)


def _log_failure(future: asyncio.Future[list[None]]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("recording a webhook delivery failed", exc_info=future.exception())


async def _pause(stopping: asyncio.Event | None, idle: float, room: asyncio.Event) -> None:
    """Wait `idle` seconds, less if a lane gets room or `stopping` is set."""
    waits = [asyncio.ensure_future(room.wait())]
    if stopping is not None:
        waits.append(asyncio.ensure_future(stopping.wait()))
    try:
        await asyncio.wait(waits, timeout=idle, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
