"""Delivering webhooks: claim due deliveries with a lease, POST them, record what happened.

A delivery is claimed (lease of LEASE seconds, attempt counted) in one short transaction, sent
outside any transaction, and its outcome recorded in another. A worker killed between the two
leaves the lease to expire and the delivery to be sent again: at least once, at most twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.billing import usage
from smsgate.config import Settings
from smsgate.kit import clock, safe_http
from smsgate.observe import WEBHOOK_LAG_SECONDS
from smsgate.storage.db import Database
from smsgate.webhooks import appformat, signing
from smsgate.webhooks.models import Delivery, DeliveryAttempt, Event, Webhook
from smsgate.webhooks.service import disable_for, secrets_of

log = logging.getLogger("smsgate.webhooks")

# Seconds before attempt 2, 3, ...: about three days in all, then the delivery fails for good.
SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000, 36000, 36000, 36000, 36000)
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.1
LEASE = timedelta(seconds=60)
BATCH = 200
PER_WEBHOOK = 4  # concurrent requests to one endpoint: a slow receiver cannot starve others
DISABLE_AFTER_FAILURES = 100  # consecutive failed attempts of one webhook
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


async def _claim(session: AsyncSession, limit: int, lease: timedelta = LEASE) -> list[Claimed]:
    now = clock.now()
    query = select(Delivery).where(*_due(now)).order_by(Delivery.next_attempt_at).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    due = list((await session.execute(query)).scalars())
    if not due:
        return []
    for delivery in due:
        delivery.lease_until = now + lease
        delivery.attempts += 1
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
        if not hook.enabled:
            delivery.status = "failed"
            delivery.last_error = f"webhook disabled: {hook.disabled_reason or 'by its owner'}"
            continue
        claimed.append(Claimed(delivery, events[delivery.event_id], hook))
    await session.flush()
    return claimed


@dataclass
class Result:
    claimed: Claimed
    outcome: safe_http.Outcome


async def _send(
    item: Claimed, client: httpx.AsyncClient, settings: Settings, gate: asyncio.Semaphore
) -> Result:
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
    async with gate:
        outcome = await safe_http.post(
            client,
            hook.url,
            body,
            headers,
            allow_private=settings.webhooks_allow_private,
            time_limit=settings.webhook_timeout_seconds,
        )
    return Result(item, outcome)


def _record(session: AsyncSession, result: Result, now: datetime) -> tuple[str | None, bool]:
    """Apply one outcome; returns (reason to disable the webhook or None, succeeded)."""
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
        delivery.status = "failed"
        return f"the receiver answered 410 Gone at {clock.iso(now)}", False
    if delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = "failed"
        return None, False
    delay = next_delay(delivery.attempts)
    if status in (429, 503) and outcome.retry_after is not None:
        delay = max(delay, min(outcome.retry_after, MAX_RETRY_AFTER))
    delivery.next_attempt_at = now + timedelta(seconds=delay)
    return None, False


async def deliver_due(
    database: Database, client: httpx.AsyncClient, settings: Settings, limit: int = BATCH
) -> int:
    """One round: claim what is due, send it (bounded per endpoint), record the outcomes."""
    if not await _any_due(database):
        return 0
    async with database.transaction() as session:
        claimed = await _claim(session, limit, timedelta(seconds=settings.webhook_lease_seconds))
    if not claimed:
        return 0
    gates: dict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(PER_WEBHOOK))
    results = await asyncio.gather(
        *(_send(item, client, settings, gates[item.webhook.id]) for item in claimed)
    )
    now = clock.now()
    async with database.transaction() as session:
        failures: dict[str, int] = defaultdict(int)
        successes: set[str] = set()
        disable: dict[str, str] = {}
        for result in results:
            session.add(result.claimed.delivery)
            reason, ok = _record(session, result, now)
            hook_id = result.claimed.webhook.id
            if ok:
                successes.add(hook_id)
            else:
                failures[hook_id] += 1
            if reason:
                disable[hook_id] = reason
        delivered: dict[str, int] = defaultdict(int)
        for result in results:
            if result.claimed.delivery.status == "succeeded":
                delivered[result.claimed.delivery.account_id] += 1
        await usage.anchors(session, delivered)  # the round's accounts not yet known, at once
        for account_id, count in delivered.items():
            await usage.add(session, account_id, {"webhook_deliveries": count})
        for hook_id in successes:
            await session.execute(
                update(Webhook).where(Webhook.id == hook_id).values(consecutive_failures=0)
            )
        for hook_id, count in failures.items():
            if hook_id in successes:
                continue
            await session.execute(
                update(Webhook)
                .where(Webhook.id == hook_id)
                .values(consecutive_failures=Webhook.consecutive_failures + count)
            )
        await session.flush()
        stale = await session.execute(
            select(Webhook.id, Webhook.consecutive_failures).where(
                Webhook.id.in_(list(failures)), Webhook.enabled.is_(True)
            )
        )
        for hook_id, count in stale.all():
            if count >= DISABLE_AFTER_FAILURES and hook_id not in disable:
                disable[hook_id] = (
                    f"{count} consecutive failed attempts; fix the receiver and enable it again"
                )
        for hook_id, reason in disable.items():
            await disable_for(session, hook_id, reason)
    return len(claimed)


async def deliver_forever(
    database: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    idle: float = 0.25,
    stopping: asyncio.Event | None = None,
) -> None:
    """Rounds back to back while there is work; until `stopping` is set (a round in flight
    finishes and records its outcomes first)."""
    while stopping is None or not stopping.is_set():
        try:
            sent = await deliver_due(database, client, settings)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook delivery round failed")
            sent = 0
        if sent < BATCH:
            await clock.wait(stopping, idle)
