"""Webhook delivery: deliveries per second to a local receiver, and the lag from event to delivery.

Per database: a real server (its embedded worker delivering), a webhook for `sms:received`
pointing at a receiver served by this process, and a paired phone that posts received messages
(`POST /api/mobile/v1/inbox`, 100 per call). Two phases:
- throughput: 5,000 events stored first, then queued at once (a replay); deliveries/s from the
  first to the last arrival;
- lag: 100 events/s for 10 s; lag = arrival at the receiver − the event's createdAt.
Prints one JSON document. Targets: ≥ 500 deliveries/s per worker process; p99 lag under 1 s at
100 events/s.

    .venv/bin/python bench/webhook_throughput.py [--events 5000] [--database ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Server, database_arguments, free_port, percentile, publish, server

from smsgate.agents.phone import DeviceClient


class Receiver:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, float]] = []  # (arrival, event createdAt), epoch s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        created = json.loads(body)["createdAt"].replace("Z", "+00:00")
        self.arrivals.append((time.time(), datetime.fromisoformat(created).timestamp()))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _wait_for(receiver: Receiver, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.arrivals) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def _run(srv: Server, events: int) -> dict[str, Any]:
    receiver = Receiver()
    port = free_port()
    receiving = uvicorn.Server(
        uvicorn.Config(receiver, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(receiving.serve())
    auth = {"Authorization": f"Bearer {srv.key}"}
    try:
        async with httpx.AsyncClient(base_url=srv.base, timeout=60) as http:
            created = await http.post("/api/devices/android", json={"name": "b"}, headers=auth)
            phone = DeviceClient(f"{srv.base}/api/mobile/v1", http=http)
            await phone.register(pairing_token=created.json()["pairing"]["token"])

            def batch(prefix: str, size: int) -> list[dict[str, Any]]:
                return [
                    {"phoneNumber": "+5215512345678", "message": "hola", "id": f"{prefix}{i}"}
                    for i in range(size)
                ]

            # The backlog: events stored first (no webhook yet), then queued all at once by a
            # replay, so the figure is the delivery rate alone, not the rate of producing events.
            since = datetime.now(UTC).isoformat()
            for offset in range(0, events, 100):
                await phone.inbox(batch(f"t{offset}-", min(100, events - offset)))
            hook = await http.post(
                "/api/webhooks",
                json={"url": f"http://127.0.0.1:{port}/hook", "events": ["sms:received"]},
                headers=auth,
            )
            hook.raise_for_status()
            queued = await http.post(
                f"/api/webhooks/{hook.json()['id']}/replay", json={"since": since}, headers=auth
            )
            queued.raise_for_status()
            await _wait_for(receiver, events, 120)
            arrivals = [a for a, _ in receiver.arrivals]
            throughput = {
                "events": events,
                "delivered": len(arrivals),
                "deliveries_per_s": round(len(arrivals) / (max(arrivals) - min(arrivals)), 1)
                if len(arrivals) > 1
                else 0.0,
            }
            receiver.arrivals.clear()
            for tick in range(100):  # 100 events/s for 10 s, 10 every 0.1 s
                await phone.inbox(batch(f"l{tick}-", 10))
                await asyncio.sleep(0.1)
            await _wait_for(receiver, 1000, 60)
            lags = [(a - c) * 1000 for a, c in receiver.arrivals]
            lag = {
                "events": 1000,
                "delivered": len(lags),
                "p50_ms": percentile(lags, 0.5),
                "p99_ms": percentile(lags, 0.99),
            }
    finally:
        receiving.should_exit = True
        await serving
    return {"throughput": throughput, "lag_at_100_per_s": lag}


def bench_database(database: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {"SMSGATE_WEBHOOKS_ALLOW_PRIVATE": "true"}
    with server(database, args.pg_url, env) as srv:
        return asyncio.run(_run(srv, args.events))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    database_arguments(parser)
    args = parser.parse_args()
    publish(
        "webhook_throughput",
        args,
        lambda db: bench_database(db, args),
        targets={"deliveries_per_s": 500, "lag_p99_ms_at_100_per_s": 1000},
    )


if __name__ == "__main__":
    main()
