"""Measurements taken where things happen (a claim, a delivery), in this process, for /metrics.

The rest of /metrics is read from the database on each scrape (smsgate/ops/metrics.py); these are
histograms that only the process doing the work can observe. Each process reports its own.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Histogram

REGISTRY = CollectorRegistry()

DISPATCH_SECONDS = Histogram(
    "smsgate_dispatch_seconds",
    "From a message's creation to its hand-over to a device (claims made by this process)",
    ["channel"],
    registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300, 1800, 3600),
)
WEBHOOK_LAG_SECONDS = Histogram(
    "smsgate_webhook_lag_seconds",
    "From an event to its successful delivery (deliveries made by this process)",
    registry=REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
BATCH_SIZE = Histogram(
    "smsgate_batch_size",
    "Items a group-commit batch took (sends, phones' state reports), by batcher",
    ["batcher"],
    registry=REGISTRY,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 500),
)
BATCH_SECONDS = Histogram(
    "smsgate_batch_seconds",
    "How long a group-commit batch took to write and commit, by batcher",
    ["batcher"],
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
)

JOB_SECONDS = Histogram(
    "smsgate_job_seconds",
    "How long each periodic job took, by job (most hold the write lock throughout)",
    ["job"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)


def batch(name: str) -> Callable[[int, float], None]:
    """What a Batcher calls after each batch (kit/batching.py), observed under `name`."""
    size, seconds = BATCH_SIZE.labels(name), BATCH_SECONDS.labels(name)

    def observed(items: int, took: float) -> None:
        size.observe(items)
        seconds.observe(took)

    return observed
