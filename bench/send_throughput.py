"""Throughput and latency of POST /api/v1/send against trivial endpoints on the same server.

Starts a real uvicorn (one process) serving the SMSGate app plus `POST /bench/echo` (a small JSON
body parsed into a pydantic model and answered back: the framework's floor for a JSON request),
per database; signs up over HTTP; then drives each endpoint at a fixed concurrency for a fixed
time: `GET /health/live` (no body), `POST /bench/echo`, and `POST /api/v1/send` (one recipient).
Prints one JSON document. Target: the send path at no less than half of the trivial JSON
endpoint's throughput.

    .venv/bin/python bench/send_throughput.py [--duration 10] [--concurrency 32]
        [--database sqlite|postgresql|both] [--pg-url postgresql+asyncpg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_PG, databases, server
from loadgen import run_load


def _send_body(i: int) -> dict[str, object]:
    return {"phoneNumbers": ["+5215555555555"], "message": f"Hola mundo {i}"}


def bench_database(database: str, args: argparse.Namespace) -> dict[str, Any]:
    with server(database, args.pg_url) as srv:
        auth = {"Authorization": f"Bearer {srv.key}"}

        async def measure() -> dict[str, Any]:
            figures: dict[str, Any] = {}
            for name, method, path, headers, body in (
                ("trivial_get", "GET", "/health/live", {}, lambda _: None),
                ("trivial_json", "POST", "/bench/echo", {}, _send_body),
                ("send", "POST", "/api/v1/send", auth, _send_body),
            ):
                for duration in (1.0, args.duration):  # warm-up, then the measured run
                    result = await run_load(
                        "127.0.0.1",
                        srv.port,
                        method,
                        path,
                        headers,
                        body,
                        concurrency=args.concurrency,
                        duration=duration,
                    )
                figures[name] = result.summary()
            return figures

        figures = asyncio.run(measure())
    send_rps = float(figures["send"]["rps"])
    for ceiling in ("trivial_json", "trivial_get"):
        rps = float(figures[ceiling]["rps"])
        figures[f"send_to_{ceiling}_ratio"] = round(send_rps / rps, 3) if rps else None
    figures["target"] = "send_to_trivial_json_ratio >= 0.5"
    figures["meets_target"] = (figures["send_to_trivial_json_ratio"] or 0) >= 0.5
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-url", default=os.environ.get("SMSGATE_TEST_DATABASE_URL", DEFAULT_PG))
    args = parser.parse_args()
    out: dict[str, Any] = {
        "benchmark": "send_throughput",
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": databases(args.database, args.pg_url, lambda db: bench_database(db, args)),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
