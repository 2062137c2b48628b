"""GET /metrics in the Prometheus text format: requests, messages, queues, webhooks, devices.

Request figures are counted in this process as requests pass; queues are read from the
database when Prometheus scrapes, so every process reports the same shared state and its own
figures for requests and connected phones. The all-time totals by state (messages, webhook
deliveries) walk whole tables: they are counted at most every TOTALS_EVERY seconds, in the
background, and `smsgate_totals_age_seconds` says how old they are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from fastapi import Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smsgate.errors import ApiError
from smsgate.kit import clock, observe
from smsgate.kit.crypto import equal
from smsgate.kit.i18n import t
from smsgate.kit.responses import api_router
from smsgate.messages import queries
from smsgate.notify.hub import Hub
from smsgate.storage.db import Database
from smsgate.webhooks import service as webhooks

router = api_router(include_in_schema=False)
TOTALS_EVERY = 60.0
log = logging.getLogger("smsgate.metrics")


def _log_failure(task: asyncio.Task[None]) -> None:
    """A background count that failed is said in the log (the last totals are kept, and the
    next scrape tries again)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("counting the /metrics totals failed", exc_info=task.exception())


class Metrics:
    def __init__(self, database: Database, hub: Hub) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "smsgate_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "smsgate_http_request_seconds",
            "HTTP request duration by route",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        # this process's CPU, memory and file descriptors, and its garbage collector's passes
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.database = database
        self.hub = hub
        self.snapshot: list[Metric] = []
        self._totals: list[Metric] = []
        self._totals_at: float | None = None  # time.monotonic() of the last count
        self._counting: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Read the shared state (called by the /metrics handler before rendering): the queues
        as they are now (from the partial index of the messages still processing: as many rows
        as wait, not as many as were ever sent); the all-time totals from `totals`, counted
        again at most every TOTALS_EVERY seconds, in the background."""
        families: list[Metric] = []
        async with self.database.reading() as session:  # a scrape holds up no writer
            depth = GaugeMetricFamily(
                "smsgate_queue_depth",
                "Messages waiting for a phone, by claiming device",
                labels=["device"],
            )
            oldest = GaugeMetricFamily(
                "smsgate_queue_oldest_seconds",
                "Age of the oldest waiting message, by device",
                labels=["device"],
            )
            now = clock.now()
            for device, count, first in await queries.waiting_by_device(session):
                label = device or "unclaimed"
                depth.add_metric([label], count)
                if first is not None:
                    first = clock.as_utc(first)
                    oldest.add_metric([label], max(0.0, (now - first).total_seconds()))
            families += [depth, oldest]
            due = GaugeMetricFamily(
                "smsgate_webhook_due",
                "Webhook deliveries due now and not being sent (the workers' backlog)",
            )
            due.add_metric([], await webhooks.due_count(session, now))
            families.append(due)
        connected = GaugeMetricFamily(
            "smsgate_connected_devices", "Phones holding an event stream open to this process"
        )
        connected.add_metric([], len(self.hub.connected()))
        families.append(connected)
        if self._totals_at is None:
            await self.count_totals()  # this process's first scrape waits for them once
        elif time.monotonic() - self._totals_at >= TOTALS_EVERY and (
            self._counting is None or self._counting.done()
        ):
            self._counting = asyncio.get_running_loop().create_task(self.count_totals())
            self._counting.add_done_callback(_log_failure)
        age = GaugeMetricFamily(
            "smsgate_totals_age_seconds",
            "How long ago smsgate_messages and smsgate_webhook_deliveries were counted",
        )
        age.add_metric([], time.monotonic() - (self._totals_at or time.monotonic()))
        self.snapshot = [*self._totals, age, *families]

    async def count_totals(self) -> None:
        """Every message and webhook delivery ever kept, by state: a walk of both tables,
        which grows with them, so it is never made per scrape."""
        async with self.database.reading() as session:
            by_state = GaugeMetricFamily(
                "smsgate_messages",
                "Messages by direction, channel and state (counted at most every minute)",
                labels=["direction", "channel", "state"],
            )
            for direction, channel, state, count in await queries.totals(session):
                by_state.add_metric([direction, channel, state], count)
            deliveries = GaugeMetricFamily(
                "smsgate_webhook_deliveries",
                "Webhook deliveries by status (counted at most every minute)",
                labels=["status"],
            )
            for status, count in await webhooks.count_by_status(session):
                deliveries.add_metric([status], count)
        self._totals = [by_state, deliveries]
        self._totals_at = time.monotonic()


class _Snapshot(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return list(self.metrics.snapshot)


def install(metrics: Metrics) -> None:
    metrics.registry.register(_Snapshot(metrics))


class RequestMetrics:
    """Counts every request by its route template (not its raw path: ids would explode the
    label set) and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            app = scope.get("app")
            metrics: Metrics | None = getattr(getattr(app, "state", None), "metrics", None)
            if metrics is not None:
                method = scope.get("method", "GET")
                metrics.requests.labels(method, template, str(status)).inc()
                metrics.latency.labels(method, template).observe(time.perf_counter() - started)


@router.get("/metrics")
async def metrics_endpoint(request: Request) -> Response:
    """Every tenant's devices and queues: for the operator's scraper only, which sends
    SMSGATE_METRICS_TOKEN as a bearer token; without the setting the endpoint is off."""
    wanted = request.app.state.settings.metrics_token
    if not wanted:
        raise ApiError(
            404, "metrics are off: set SMSGATE_METRICS_TOKEN to turn them on", "not_found"
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not equal(given.strip(), wanted):
        raise ApiError(
            401,
            t("send the metrics token: Authorization: Bearer <SMSGATE_METRICS_TOKEN>"),
            "unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )
    metrics: Metrics = request.app.state.metrics
    await metrics.refresh()
    body = generate_latest(metrics.registry) + generate_latest(observe.REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
