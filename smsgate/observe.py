"""Measurements taken where things happen (a claim, a delivery), in this process, for /metrics.

The rest of /metrics is read from the database on each scrape (smsgate/metrics.py); these are
histograms that only the process doing the work can observe. Each process reports its own.
"""

from __future__ import annotations

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
