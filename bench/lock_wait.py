"""How long a SQLite writer waits for the write lock behind another process's short transactions.

On SQLite the send writer's process and the API process take turns at the one write lock: the
writer's batches (a few ms each), and between them the API process's own transactions (phones'
reports, received messages, dashboard actions; through the async driver each holds the lock for
a few event-loop turns). This measures only that hand-over, with two processes on a WAL database
in a temporary folder and nothing else of the server:

- "batches" writes 16 rows a transaction, then rests 0–3 ms (the next batch forming), as the
  send writer does under load;
- "requests" holds the lock 0.2–3 ms a transaction (a sleep: the event loop doing other work),
  then rests 0–3 ms.

Each process times its `BEGIN IMMEDIATE`. With `--wait sqlite` the batches wait through SQLite's
busy handler (`busy_timeout`, which sleeps 1, 2, 5, 10… ms between attempts); with `--wait fine`
through `storage/sqlitelock.begin_immediate` (0.1 ms, then at most every 2 ms), as the send
writer does. The requests always wait through SQLite's handler, as the API process does. Prints
JSON: for each side, transactions a second and the mean, p50 and p99 wait for the lock, in ms.

    .venv/bin/python bench/lock_wait.py [--seconds 5] [--wait sqlite,fine]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smsgate.storage import sqlitelock


def _connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"PRAGMA busy_timeout={sqlitelock.BUSY_TIMEOUT_MS}")
    return connection


def _begin(connection: sqlite3.Connection, wait: str, role: str) -> None:
    if wait == "fine" and role == "batches":  # the API process waits through SQLite's handler
        sqlitelock.begin_immediate(connection)
    else:
        connection.execute("BEGIN IMMEDIATE")


def _side(role: str, path: str, wait: str, seconds: float, out: Any) -> None:
    connection = _connect(path)
    chance = random.Random(role)
    waits: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        _begin(connection, wait, role)
        waits.append(time.perf_counter() - started)
        if role == "batches":
            rows = [(chance.random(), "x" * 200) for _ in range(16)]
            connection.executemany("INSERT INTO t (v, body) VALUES (?, ?)", rows)
            connection.execute("COMMIT")
            time.sleep(chance.uniform(0, 0.003))  # the next batch forming in the event loop
        else:
            connection.execute("INSERT INTO t (v, body) VALUES (?, ?)", (chance.random(), "r"))
            time.sleep(chance.uniform(0.0002, 0.003))
            connection.execute("COMMIT")
            time.sleep(chance.uniform(0, 0.003))
    connection.close()
    out.put((role, waits))


def _figures(waits: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(waits)
    ms = 1000
    return {
        "transactions_per_s": round(len(waits) / seconds, 1),
        "mean_wait_ms": round(sum(waits) / len(waits) * ms, 3),
        "p50_wait_ms": round(ordered[len(ordered) // 2] * ms, 3),
        "p99_wait_ms": round(ordered[int(len(ordered) * 0.99)] * ms, 3),
    }


def run(wait: str, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "lock.db")
        setup = _connect(path)
        setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v REAL, body TEXT)")
        setup.close()
        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        sides = [
            context.Process(target=_side, args=(role, path, wait, seconds, out))
            for role in ("batches", "requests")
        ]
        for process in sides:
            process.start()
        results = dict(out.get() for _ in sides)
        for process in sides:
            process.join()
    return {role: _figures(results[role], seconds) for role in ("batches", "requests")}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--wait", default="sqlite,fine", help="sqlite, fine, or both comma-separated"
    )
    args = parser.parse_args()
    results = {wait: run(wait, args.seconds) for wait in args.wait.split(",")}
    print(json.dumps({"benchmark": "lock_wait", "seconds": args.seconds, "results": results}))


if __name__ == "__main__":
    main()
