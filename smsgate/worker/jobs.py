"""The periodic jobs: expiry, failover, presence, pruning. Each is idempotent and guarded by
its own conditions, so running it in several processes at once is safe."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import FastAPI

from smsgate.accounts import access
from smsgate.campaigns import service as campaigns
from smsgate.config import Settings
from smsgate.devices import presence
from smsgate.kit import clock, observe
from smsgate.messages import queue, reports, states, sweeps
from smsgate.notify.hub import MESSAGE_ENQUEUED, Event, Hub
from smsgate.storage import idempotency
from smsgate.storage.db import Database
from smsgate.webhooks.delivery import deliver_forever
from smsgate.whatsapp.runner import CloudLines, fail_stalled
from smsgate.worker import retention

log = logging.getLogger("smsgate.worker")


PHONE_STALLED = (
    f"{states.DEVICE_TIMEOUT}: the phone took this message but has not reported whether it "
    "was sent (it may be off or without internet); it may or may not have been sent, and a "
    "report from the phone that arrives later still applies"
)


async def _stalled_phones(database: Database, hub: Hub, seconds: int) -> None:
    """Messages phones took and never reported on: back to the queue for accounts that chose
    so (`rerouteStalled`), their recipients failed with `device_timeout` for everyone else."""
    cutoff = clock.now() - timedelta(seconds=seconds)
    for account_id in await sweeps.reroute_all_stalled(database, cutoff):
        hub.publish(account_id, None, Event(MESSAGE_ENQUEUED))
    await sweeps.fail_all_stalled(database, queue.ANDROID_CHANNELS, cutoff, PHONE_STALLED)


SCHEDULED_LOOKBACK = timedelta(days=1)  # a process starting wakes for what fell due meanwhile


async def _wake_for_scheduled(app: FastAPI, database: Database, hub: Hub) -> None:
    """Phones pull when woken: wake the accounts whose scheduled messages fell due since the
    last pass (another process doing the same wakes them twice, which is harmless)."""
    now = clock.now()
    after = getattr(app.state, "scheduled_checked_at", None) or now - SCHEDULED_LOOKBACK
    async with database.reading() as session:
        due = await sweeps.scheduled_due(session, after, now)
    app.state.scheduled_checked_at = now
    for account_id in due:
        hub.publish(account_id, None, Event(MESSAGE_ENQUEUED))


@contextlib.asynccontextmanager
async def _timed(job: str) -> AsyncIterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        observe.JOB_SECONDS.labels(job).observe(time.perf_counter() - started)


async def run_jobs(app: FastAPI) -> None:
    """One pass of every periodic job, each in its own transaction (timed: smsgate_job_seconds)."""
    database: Database = app.state.db
    settings: Settings = app.state.settings
    hub: Hub = app.state.hub
    window = timedelta(seconds=settings.device_offline_after_seconds)

    async with _timed("expire"), database.transaction() as session:
        await sweeps.expire_messages(session)
    async with _timed("presence"):
        await presence.touch_connected(database, hub.connected())
    async with _timed("offline"), database.transaction() as session:
        await presence.mark_stale_offline(session, window, hub.connected())
    async with _timed("whatsapp_stalled"):
        await fail_stalled(database, timedelta(seconds=settings.whatsapp_stalled_after_seconds))
    if settings.device_stalled_after_seconds:
        async with _timed("phone_stalled"):
            await _stalled_phones(database, hub, settings.device_stalled_after_seconds)
    async with _timed("early_statuses"), database.transaction() as session:
        await reports.apply_early_statuses(session)
    async with _timed("release"), database.transaction() as session:
        woken = await sweeps.release_unacknowledged(session, window)
    for account_id in woken:
        hub.publish(account_id, None, Event(MESSAGE_ENQUEUED))
    async with _timed("scheduled"):
        await _wake_for_scheduled(app, database, hub)
    async with _timed("campaigns"):
        await campaigns.finish(database)
    async with _timed("retention"):
        await retention.prune(database, settings)
    async with _timed("expired_credentials"), database.transaction() as session:
        await access.prune_expired(session)
        await idempotency.purge(session)


async def run_forever(app: FastAPI, interval: float, stopping: asyncio.Event | None = None) -> None:
    while stopping is None or not stopping.is_set():
        try:
            await run_jobs(app)
        except asyncio.CancelledError:
            raise
        except Exception:  # a failing pass is logged and retried on the next tick
            log.exception("periodic jobs failed")
        await clock.wait(stopping, interval)


async def keep_streams_seen(
    app: FastAPI, interval: float, stopping: asyncio.Event | None = None
) -> None:
    """An API process that does not run the jobs still vouches for the phones whose event
    streams it holds: without this, a separate worker would turn idle, connected phones
    offline (it cannot see their streams) and release their claims."""
    database: Database = app.state.db
    hub: Hub = app.state.hub
    while stopping is None or not stopping.is_set():
        try:
            await presence.touch_connected(database, hub.connected())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("recording open streams failed")
        await clock.wait(stopping, interval)


class EmbeddedWorker:
    """The periodic jobs, webhook delivery and the WhatsApp cloud lines, as tasks of the
    server's own event loop (or of `smsgate worker`).

    Stopping is graceful: no new work is claimed, and what is in flight (a webhook POST, a
    WhatsApp send, a jobs pass) has `grace` seconds to finish and be recorded before the tasks
    are cancelled; anything cut off then is left to its lease or the stalled-send job."""

    GRACE = 15.0

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._tasks: list[asyncio.Task[None]] = []
        self.stopping = asyncio.Event()

    def start_presence_only(self) -> None:
        """For API processes beside a separate `smsgate worker`."""
        settings: Settings = self.app.state.settings
        self._tasks = [
            asyncio.get_running_loop().create_task(
                keep_streams_seen(self.app, settings.worker_interval_seconds, self.stopping),
                name="smsgate-presence",
            )
        ]

    def start(self) -> None:
        settings: Settings = self.app.state.settings
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(
                run_forever(self.app, settings.worker_interval_seconds, self.stopping),
                name="smsgate-jobs",
            ),
            loop.create_task(
                deliver_forever(
                    self.app.state.db,
                    self.app.state.webhook_http,
                    settings,
                    stopping=self.stopping,
                ),
                name="smsgate-webhooks",
            ),
            loop.create_task(
                CloudLines(self.app, stopping=self.stopping).run_forever(
                    settings.worker_interval_seconds
                ),
                name="smsgate-whatsapp-cloud",
            ),
        ]

    async def stop(self, grace: float | None = None) -> None:
        self.stopping.set()
        if self._tasks:
            _, pending = await asyncio.wait(
                self._tasks, timeout=self.GRACE if grace is None else grace
            )
            for task in pending:
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
