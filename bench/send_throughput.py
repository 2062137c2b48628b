"""Throughput and latency of POST /api/v1/send against trivial endpoints on the same server.

Starts a real uvicorn (one process) serving the SMSGate app plus `POST /bench/echo` (a small JSON
body parsed into a pydantic model and answered back: the framework's floor for a JSON request),
per database; signs up over HTTP; then drives each endpoint at a fixed concurrency for a fixed
time: `GET /health/live` (no body), `POST /bench/echo`, `POST /api/v1/send` (one recipient), and
the same send pinned to an Android device (`send_to_device`: it also joins the conversation), and
the same send through the third-party API the ecosystem's SDKs use (`send_3rdparty`).
Prints one JSON document. Target: the send path at no less than half of the trivial JSON
endpoint's throughput. That ratio is also measured from adjacent short windows (`paired`:
echo, send, echo, send…, each send against the echo windows either side of it), which a
machine whose speed drifts between the endpoints' runs moves far less.

    .venv/bin/python bench/send_throughput.py [--duration 10] [--concurrency 32]
        [--database sqlite|postgresql|both] [--pg-url postgresql+asyncpg://...]
        [--processes 1,2]   (PostgreSQL: the same run with N API processes, uvicorn --workers)
        [--pairs 5] [--pair-seconds 2]   (the paired windows; --pairs 0 skips them)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SCRAPER, Server, database_arguments, publish, server
from loadgen import LoadResult, run_load

# 10,000 different recipients, cycled: a business's customer base, not one number hammered
# (the server caches number parsing, so one repeated number would flatter it)
_NUMBERS = [f"+52155{n:08d}" for n in random.Random(42).sample(range(10**8), 10_000)]


def _send_body(i: int) -> dict[str, object]:
    return {"phoneNumbers": [_NUMBERS[i % len(_NUMBERS)]], "message": f"Hola mundo {i}"}


def _third_party_body(i: int) -> dict[str, object]:
    """The same send in the third-party API's shape (what the ecosystem's SDKs post)."""
    return {"phoneNumbers": [_NUMBERS[i % len(_NUMBERS)]], "textMessage": {"text": f"Hola {i}"}}


def bench_database(database: str, args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = bench_processes(database, args, 1)
    counts = [int(n) for n in args.processes.split(",") if n.strip()]
    if database == "postgresql" and any(n > 1 for n in counts):
        # several API processes share PostgreSQL (SQLite has one writer: one process)
        figures["processes"] = {}
        for count in counts:
            result = figures if count == 1 else bench_processes(database, args, count)
            figures["processes"][str(count)] = {"send_rps": result["send"]["rps"]}
        one = float(figures["processes"]["1"]["send_rps"]) if "1" in figures["processes"] else 0
        for entry in figures["processes"].values():
            entry["scaling"] = round(float(entry["send_rps"]) / one, 2) if one else None
        figures["processes_target"] = "2 processes >= 1.5 x 1 process"
    return figures


def bench_processes(database: str, args: argparse.Namespace, processes: int) -> dict[str, Any]:
    with server(database, args.pg_url, workers=processes) as srv:
        auth = {"Authorization": f"Bearer {srv.key}"}
        made = httpx.post(
            f"{srv.base}/api/devices/android", json={"name": "bench"}, headers=auth, timeout=30
        )
        made.raise_for_status()
        device_id = made.json()["id"]

        def to_device(i: int) -> dict[str, object]:
            return {**_send_body(i), "deviceId": device_id}

        async def measure() -> dict[str, Any]:
            figures: dict[str, Any] = {}
            for name, method, path, headers, body in (
                ("trivial_get", "GET", "/health/live", {}, lambda _: None),
                ("trivial_json", "POST", "/bench/echo", {}, _send_body),
                ("send", "POST", "/api/v1/send", auth, _send_body),
                # pinned to a phone: each recipient also joins its conversation
                ("send_to_device", "POST", "/api/v1/send", auth, to_device),
                # the official SDKs' send (POST /api/3rdparty/v1/messages), same key
                ("send_3rdparty", "POST", "/api/3rdparty/v1/messages", auth, _third_party_body),
            ):
                for duration in (1.0, args.duration):  # warm-up, then the measured run
                    before = await _server_figures(srv, processes)
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
                figures[name] |= _per_request(before, await _server_figures(srv, processes), result)
            if args.pairs:
                figures["paired"] = await _paired(srv.port, auth, args)
            return figures

        figures = asyncio.run(measure())
    send_rps = float(figures["send"]["rps"])
    for ceiling in ("trivial_json", "trivial_get"):
        rps = float(figures[ceiling]["rps"])
        figures[f"send_to_{ceiling}_ratio"] = round(send_rps / rps, 3) if rps else None
    figures["target"] = "send_to_trivial_json_ratio >= 0.5"
    figures["meets_target"] = (figures["send_to_trivial_json_ratio"] or 0) >= 0.5
    if "paired" in figures:
        figures["paired_target"] = "paired median send ÷ trivial_json >= 0.5"
        figures["meets_paired_target"] = figures["paired"]["median_ratio"] >= 0.5
    return figures


async def _paired(port: int, auth: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """The ratio again, from adjacent short windows: echo, send, echo, send... The measurements
    above run each endpoint once, one after the other, and on a shared machine whose speed
    drifts by a third within minutes the two halves of a ratio can come from different
    machines; two windows a few seconds apart see nearly the same one. Each send window is
    divided by the mean of the echo windows either side of it."""
    window = args.pair_seconds
    echoes: list[float] = []
    sends: list[float] = []
    sent = 0  # the numbers go on cycling where the last window stopped
    for i in range(args.pairs + 1):
        for name, path, headers, rates in (
            ("trivial_json", "/bench/echo", {}, echoes),
            ("send", "/api/v1/send", auth, sends),
        ):
            if name == "send" and i == args.pairs:
                break  # the last echo window closes the last pair
            start = sent

            def body(n: int, start: int = start) -> dict[str, object]:
                return _send_body(start + n)

            result = await run_load(
                "127.0.0.1",
                port,
                "POST",
                path,
                headers,
                body,
                concurrency=args.concurrency,
                duration=window,
            )
            if name == "send":
                sent += result.requests
            rates.append(float(result.summary()["rps"]))
    ratios = [
        round(send / ((echoes[i] + echoes[i + 1]) / 2), 3)
        for i, send in enumerate(sends)
        if echoes[i] + echoes[i + 1]
    ]
    return {
        "window_s": window,
        "echo_rps": echoes,
        "send_rps": sends,
        "ratios": ratios,
        "median_ratio": sorted(ratios)[len(ratios) // 2] if ratios else 0.0,
    }


async def _server_figures(srv: Server, processes: int) -> dict[str, float]:
    """The server's CPU so far (its API process, and the processes it started: the send
    writer), and, with one API process, its garbage collector's passes (from /metrics)."""
    used = srv.cpu_by_process()
    figures = {"api": used.pop(srv.pid, 0.0), "others": sum(used.values())}
    if processes == 1:
        async with httpx.AsyncClient(timeout=30) as http:
            text = (await http.get(f"{srv.base}/metrics", headers=SCRAPER)).text
        for line in text.splitlines():
            if line.startswith("python_gc_collections_total{"):
                figures["gc"] = figures.get("gc", 0.0) + float(line.split()[-1])
            for series, name in _BATCH_SERIES.items():
                if line.startswith(series + " "):
                    figures[name] = float(line.split()[-1])
    return figures


# the send writer's group commits (/metrics)
_BATCH_SERIES = {
    'smsgate_batch_size_sum{batcher="sends"}': "batched",
    'smsgate_batch_size_count{batcher="sends"}': "batches",
    'smsgate_batch_seconds_sum{batcher="sends"}': "batch_seconds",
}


def _per_request(
    before: dict[str, float], after: dict[str, float], result: LoadResult
) -> dict[str, Any]:
    """CPU microseconds a request in the API process (the event loop's, the bottleneck) and in
    the others; garbage collections per 1,000 requests; the send writer's batches (mean size,
    and mean time from taking a batch to answering it)."""
    n = max(result.requests, 1)
    out: dict[str, Any] = {
        "cpu_us_per_request": {
            "api": round((after["api"] - before["api"]) * 1e6 / n),
            "others": round((after["others"] - before["others"]) * 1e6 / n),
        }
    }
    if "gc" in before and "gc" in after:
        out["gc_collections_per_1000"] = round((after["gc"] - before["gc"]) * 1000 / n, 1)
    batches = after.get("batches", 0.0) - before.get("batches", 0.0)
    if batches:
        out["send_batches"] = {
            "mean_size": round((after["batched"] - before["batched"]) / batches, 1),
            "mean_ms": round(
                (after["batch_seconds"] - before["batch_seconds"]) * 1000 / batches, 2
            ),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    database_arguments(parser)
    parser.add_argument(
        "--processes", default="1", help="API process counts to compare on PostgreSQL, e.g. 1,2"
    )
    parser.add_argument(
        "--pairs", type=int, default=5, help="adjacent echo/send windows for the paired ratio"
    )
    parser.add_argument("--pair-seconds", type=float, default=2.0)
    args = parser.parse_args()
    publish(
        "send_throughput",
        args,
        lambda db: bench_database(db, args),
        concurrency=args.concurrency,
        duration_s=args.duration,
    )


if __name__ == "__main__":
    main()
