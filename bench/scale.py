"""Reads after a year of traffic: every list, filter, search, overview and scrape at two sizes.

Per database and per size (default 100,000 and 1,000,000 messages): starts the real server
(embedded worker on, as installed), signs up a shop, fills its database with a year-old
install's rows (bench/fill.py: 90 days of reminders and replies over conversation threads, one
busy thread with 1 % of them, and a small second account), then
- times each read path one request at a time after a warm-up (p50/p99 ms);
- sends for 10 s (`POST /api/v1/send`, 16 connections) with the worker on;
- first, with nothing else running, reads the periodic jobs' times from the server's own
  histogram (`smsgate_job_seconds`, retention on at 60 days): per job, the mean and the upper
  bound of the slowest bucket any pass fell in.
Prints one JSON document: each path's p50/p99 at each size, the big size's p99 over the small
one's (`growth`), and whether the [scale] targets hold (p99 < 50 ms at the big size and no more
than 2x the small one's; sends at the big size >= 0.9x the small one's).

    .venv/bin/python bench/scale.py [--sizes 100000,1000000] [--requests 100]
        [--send-seconds 5] [--database sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import secrets
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SCRAPER, Server, database_arguments, percentile, publish, server
from fill import Filled, fill
from loadgen import run_load

from smsgate.config import Settings
from smsgate.storage.db import make_engine

PASSWORD = secrets.token_hex(12)
P99_LIMIT_MS = 50.0
GROWTH_LIMIT = 2.0
SEND_RATIO = 0.9


async def _fill(srv: Server, account_id: str, messages: int, other_id: str) -> tuple[Filled, float]:
    settings = Settings(
        data_dir=Path(srv.env["SMSGATE_DATA_DIR"]),
        database_url=srv.env.get("SMSGATE_DATABASE_URL", ""),
        database_schema=srv.env.get("SMSGATE_DATABASE_SCHEMA", ""),
    ).resolved()
    engine = make_engine(settings)
    started = time.perf_counter()
    try:
        async with engine.begin() as conn:
            filled = await fill(conn, account_id, messages=messages)
            await fill(conn, other_id, messages=max(100, messages // 1000), seed=8)
        # as a year-old database is: the bulk load checkpointed out of SQLite's write-ahead
        # log, and vacuumed and analysed by PostgreSQL's autovacuum
        if settings.is_sqlite:
            path = settings.database_url.split("///", 1)[1]
            with sqlite3.connect(path) as plain:
                for _ in range(50):  # until no reader of the server's holds it up
                    busy, _, _ = plain.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                    if not busy:
                        break
                    time.sleep(0.1)
                else:
                    raise SystemExit("the write-ahead log could not be checkpointed")
        else:
            async with engine.connect() as conn:
                autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.exec_driver_sql("VACUUM ANALYZE")
    finally:
        await engine.dispose()
    return filled, time.perf_counter() - started


def _paths(filled: Filled) -> dict[str, tuple[str, str]]:
    """name -> (who asks: key, other, session or scraper; path)."""
    day = datetime.now(UTC).replace(microsecond=0) - timedelta(days=45)
    window = {
        "since": day.isoformat().replace("+00:00", "Z"),
        "until": (day + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
    }
    digits = filled.quiet_number[-6:-2]
    return {
        "messages, a quiet number": ("key", f"/api/v1/messages?phoneNumber={filled.quiet_number}"),
        "messages, the busy number": ("key", f"/api/v1/messages?phoneNumber={filled.busy_number}"),
        "messages, one day 45 days back": (
            "key",
            f"/api/v1/messages?since={window['since']}&until={window['until']}",
        ),
        "messages, no filter": ("key", "/api/v1/messages"),
        "message by id": ("key", f"/api/v1/messages/{filled.some_message}"),
        "inbox": ("key", "/api/v1/inbox"),
        "conversations": ("key", "/api/conversations"),
        "conversations, search 4 digits": ("key", f"/api/conversations?q={digits}"),
        "conversations, search nomatch": ("key", "/api/conversations?q=nomatch"),
        "a quiet thread's messages": (
            "key",
            f"/api/conversations/{filled.quiet_thread}/messages",
        ),
        "the busy thread's messages": ("key", f"/api/conversations/{filled.busy_thread}/messages"),
        "billing": ("key", "/api/billing"),
        "another tenant's messages": ("other", "/api/v1/messages"),
        "metrics scrape": ("scraper", "/metrics"),
        "dashboard overview": ("session", "/dashboard"),
        "dashboard messages": ("session", "/dashboard/messages"),
        "dashboard conversations": ("session", "/dashboard/conversations"),
        "dashboard busy thread": ("session", f"/dashboard/conversations/{filled.busy_thread}"),
    }


def _time(http: httpx.Client, path: str, headers: dict[str, str], requests: int) -> dict[str, Any]:
    for _ in range(5):  # warm-up: caches, prepared statements, the first count of /metrics
        answer = http.get(path, headers=headers)
        answer.raise_for_status()
    took = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = http.get(path, headers=headers)
        took.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    return {"p50_ms": percentile(took, 0.5), "p99_ms": percentile(took, 0.99)}


def _histogram(text: str) -> dict[str, dict[str, float]]:
    """smsgate_job_seconds by job: each bucket's count (by `le`), the sum and the count."""
    jobs: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        found = re.match(r'smsgate_job_seconds_bucket\{job="([^"]+)",le="([^"]+)"\} (\S+)', line)
        if found:
            jobs.setdefault(found.group(1), {})[found.group(2)] = float(found.group(3))
            continue
        found = re.match(r'smsgate_job_seconds_(sum|count)\{job="([^"]+)"\} (\S+)', line)
        if found:
            jobs.setdefault(found.group(2), {})[found.group(1)] = float(found.group(3))
    return jobs


def _jobs(before: str, after: str) -> dict[str, Any]:
    """Per job, over the passes between two scrapes: how many, their mean (ms), and the upper
    bound (ms) of the slowest bucket any of them fell in."""
    was, now = _histogram(before), _histogram(after)
    out: dict[str, Any] = {}
    for job, figures in now.items():
        old = was.get(job, {})
        passes = figures.get("count", 0.0) - old.get("count", 0.0)
        if not passes:
            continue
        seconds = figures.get("sum", 0.0) - old.get("sum", 0.0)
        bounds = sorted(
            (float(le), n - old.get(le, 0.0))
            for le, n in figures.items()
            if le not in ("sum", "count")
        )
        slowest = next(le for le, n in bounds if n >= passes)
        out[job] = {
            "passes": int(passes),
            "mean_ms": round(seconds / passes * 1000, 2),
            "slowest_at_most_ms": None if slowest == float("inf") else slowest * 1000,
        }
    return out


def _sends(srv: Server, key: str, seconds: float) -> dict[str, Any]:
    numbers = [f"+52155{n:08d}" for n in random.Random(42).sample(range(10**8), 10_000)]

    def body(i: int) -> dict[str, object]:
        return {"phoneNumbers": [numbers[i % len(numbers)]], "message": f"Hola {i}"}

    result = asyncio.run(
        run_load(
            "127.0.0.1",
            srv.port,
            "POST",
            "/api/v1/send",
            {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            body,
            concurrency=16,
            duration=seconds,
        )
    )
    summary = result.summary()
    return {k: summary[k] for k in ("rps", "p50_ms", "p99_ms", "errors", "statuses")}


def _signup(http: httpx.Client, email: str) -> tuple[str, str]:
    """A new account (its session stays in `http`'s cookies): its id and an API key."""
    answer = http.post("/api/auth/signup", json={"email": email, "password": PASSWORD})
    answer.raise_for_status()
    csrf = {"X-CSRF-Token": answer.json()["csrfToken"]}
    key = http.post("/api/keys", json={"name": "scale"}, headers=csrf)
    key.raise_for_status()
    return answer.json()["account"]["id"], key.json()["key"]


def at_size(database: str, args: argparse.Namespace, size: int) -> dict[str, Any]:
    # as installed: the embedded worker on, its passes every 5 s; retention on, so that its
    # batches are timed too (the oldest month of the 90 days is past it)
    env = {"SMSGATE_WORKER_INTERVAL_SECONDS": "5", "SMSGATE_RETENTION_MESSAGE_DAYS": "60"}
    with (
        server(database, args.pg_url, env=env) as srv,
        httpx.Client(base_url=srv.base, timeout=120) as http,
        httpx.Client(base_url=srv.base, timeout=120) as other_http,
    ):
        other_id, other_key = _signup(other_http, f"other-{size}@example.com")
        account_id, key = _signup(http, f"scale-{size}@example.com")
        filled, fill_seconds = asyncio.run(_fill(srv, account_id, size, other_id))
        who = {
            "key": {"Authorization": f"Bearer {key}"},
            "other": {"Authorization": f"Bearer {other_key}"},
            "scraper": SCRAPER,
            "session": {},
        }
        # the periodic jobs alone, over the filled database, from their second pass (the first
        # one after a bulk load of a million rows reads what the load left cold)
        time.sleep(6)
        quiet = http.get("/metrics", headers=SCRAPER).text
        time.sleep(args.settle)
        jobs = _jobs(quiet, http.get("/metrics", headers=SCRAPER).text)
        paths = {
            name: _time(http, path, who[asker], args.requests)
            for name, (asker, path) in _paths(filled).items()
        }
        sends = _sends(srv, key, args.send_seconds)
    return {
        "messages": size,
        "threads": filled.threads,
        "fill_seconds": round(fill_seconds, 1),
        "paths": paths,
        "sends": sends,
        "jobs": jobs,
    }


def bench_database(database: str, args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(n) for n in args.sizes.split(",")]
    runs = {str(size): at_size(database, args, size) for size in sizes}
    small, big = runs[str(sizes[0])], runs[str(sizes[-1])]
    growth = {}
    failing = []
    for name, figures in big["paths"].items():
        before = small["paths"][name]
        ratio = round(figures["p99_ms"] / before["p99_ms"], 2) if before["p99_ms"] else None
        growth[name] = ratio
        if figures["p99_ms"] >= P99_LIMIT_MS or (ratio is not None and ratio > GROWTH_LIMIT):
            failing.append(name)
    send_ratio = round(big["sends"]["rps"] / small["sends"]["rps"], 2)
    return {
        "runs": runs,
        "growth_p99": growth,
        "send_ratio": send_ratio,
        "targets": {
            "paths_failing": failing,
            "sends_met": send_ratio >= SEND_RATIO,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--send-seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=16.0, help="seconds the jobs are timed")
    database_arguments(parser)
    args = parser.parse_args()
    publish(
        "scale",
        args,
        lambda database: bench_database(database, args),
        targets={
            "p99_ms_below": P99_LIMIT_MS,
            "growth_at_most": GROWTH_LIMIT,
            "send_ratio_at_least": SEND_RATIO,
        },
    )


if __name__ == "__main__":
    main()
