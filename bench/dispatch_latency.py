"""From the 202 of POST /api/v1/send to the message in a phone's hands, with many phones online.

Per database and per fleet size (default 1 and 1,000 connected devices): pairs that many devices
through the API, opens every device's event stream (`GET /api/mobile/v1/events`, as the app does
in SSE-only mode), records the server's memory, then sends messages one at a time, each pinned to
a random connected device, and measures
- wake: 202 received → `MessageEnqueued` frame read on that device's stream;
- arrival: 202 received → the device's `GET /message` has returned the message.
Prints one JSON document. Targets: arrival p99 under 50 ms with 1,000 devices; under 100 KB of
server memory per idle connected device.

    .venv/bin/python bench/dispatch_latency.py [--devices 1,1000] [--sends 200]
        [--database sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Server, database_arguments, percentile, publish, server

from smsgate.agents.phone import DeviceClient


async def _pair(http: httpx.AsyncClient, srv: Server, index: int) -> DeviceClient:
    auth = {"Authorization": f"Bearer {srv.key}"}
    created = await http.post(
        f"{srv.base}/api/devices/android", json={"name": f"d{index}"}, headers=auth
    )
    created.raise_for_status()
    phone = DeviceClient(f"{srv.base}/api/mobile/v1", http=http)
    await phone.register(pairing_token=created.json()["pairing"]["token"], name=f"bench/{index}")
    return phone


async def _fleet(srv: Server, count: int, sends: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=count + 50, max_keepalive_connections=count + 50)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        phones: list[DeviceClient] = []
        for start in range(0, count, 50):
            phones += await asyncio.gather(
                *(_pair(http, srv, i) for i in range(start, min(count, start + 50)))
            )
        rss_before = srv.rss_kib()
        woken: dict[str, asyncio.Event] = {p.device_id or "": asyncio.Event() for p in phones}
        opened = asyncio.Semaphore(0)

        async def listen(phone: DeviceClient) -> None:
            async for name, _ in phone.events():
                if name == "connected":
                    opened.release()
                elif name == "MessageEnqueued":
                    woken[phone.device_id or ""].set()

        listeners = [asyncio.create_task(listen(p)) for p in phones]
        for _ in phones:
            await asyncio.wait_for(opened.acquire(), 60)
        await asyncio.sleep(1)
        rss_connected = srv.rss_kib()
        wake_ms: list[float] = []
        arrive_ms: list[float] = []
        auth = {"Authorization": f"Bearer {srv.key}"}
        rng = random.Random(7)
        try:
            for i in range(sends):
                phone = rng.choice(phones)
                event = woken[phone.device_id or ""]
                event.clear()
                response = await http.post(
                    f"{srv.base}/api/v1/send",
                    json={
                        "phoneNumbers": ["+5215555555555"],
                        "message": f"m{i}",
                        "deviceId": phone.device_id,
                    },
                    headers=auth,
                )
                accepted = time.perf_counter()
                assert response.status_code == 202, response.text
                await asyncio.wait_for(event.wait(), 10)
                wake_ms.append((time.perf_counter() - accepted) * 1000)
                message_id = response.json()["id"]
                pulled = await phone.pull()
                arrive_ms.append((time.perf_counter() - accepted) * 1000)
                assert any(m["id"] == message_id for m in pulled)
                await phone.report(message_id, "Processed", [("+5215555555555", "Processed", None)])
        finally:
            for task in listeners:
                task.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)
    per_device = (rss_connected - rss_before) * 1024 / count if count else 0
    return {
        "devices": count,
        "sends": sends,
        "wake_ms": {"p50": percentile(wake_ms, 0.5), "p99": percentile(wake_ms, 0.99)},
        "arrival_ms": {"p50": percentile(arrive_ms, 0.5), "p99": percentile(arrive_ms, 0.99)},
        "server_rss_kib": {"paired": rss_before, "streams_open": rss_connected},
        "memory_per_idle_device_bytes": round(per_device),
    }


def bench_database(database: str, args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for count in args.devices:
        # a fresh server per fleet size, so the memory figure is this fleet's own
        with server(database, args.pg_url) as srv:
            runs.append(asyncio.run(_fleet(srv, count, args.sends)))
    return {"fleets": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", default="1,1000")
    parser.add_argument("--sends", type=int, default=200)
    database_arguments(parser)
    args = parser.parse_args()
    args.devices = [int(n) for n in args.devices.split(",") if n]
    publish(
        "dispatch_latency",
        args,
        lambda db: bench_database(db, args),
        targets={"arrival_p99_ms_at_1000_devices": 50, "memory_per_idle_device_bytes": 102400},
    )


if __name__ == "__main__":
    main()
