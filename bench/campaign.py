"""A 10,000-row campaign: how long it takes to accept, and what it does to single sends.

Per database: starts the real server, pairs phones (default 4) that keep pulling their queue and
reporting everything they take as sent (one PATCH per pull, as the app batches its reports),
then
- without a campaign: sends single messages one at a time and measures, for each, the 202's
  latency and the time until a phone has it in hand (its `GET /message` returned it);
- uploads a 10,000-row CSV (`phoneNumber,nombre,fecha,hora`) to POST /api/campaigns: the
  seconds until its 201 (every row validated and stored);
- at once, while the phones work through the campaign, the same single sends again.
Prints one JSON document; `ratio` is the campaign run's p99 over the quiet run's, measured in
one run. Target: accepted in seconds; single sends not starved (a single send is taken before
any campaign message that waits: campaigns go at a lower priority).

    .venv/bin/python bench/campaign.py [--rows 10000] [--sends 100] [--phones 4]
        [--database sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Server, database_arguments, percentile, publish, server

from smsgate.agents.phone import DeviceClient


def _sheet(rows: int) -> bytes:
    pick = random.Random(11)
    numbers = [f"+52155{n:08d}" for n in pick.sample(range(10**8), rows)]
    out = io.StringIO()
    sheet = csv.writer(out)
    sheet.writerow(["phoneNumber", "nombre", "fecha", "hora"])
    for i, number in enumerate(numbers):
        sheet.writerow([number, f"Cliente {i}", "8 de diciembre", f"{9 + i % 9}:{i % 60:02d}"])
    return out.getvalue().encode()


class Fleet:
    """Phones that pull and report sent until stopped; when each message was first taken."""

    def __init__(self, phones: list[DeviceClient]) -> None:
        self.phones = phones
        self.taken_at: dict[str, float] = {}
        self.waiting: dict[str, asyncio.Event] = {}
        self.campaign_taken = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(p)) for p in self.phones]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _work(self, phone: DeviceClient) -> None:
        while not self._stop.is_set():
            batch = await phone.pull()
            now = time.perf_counter()
            fresh = [m for m in batch if m["id"] not in self.taken_at]
            for message in fresh:
                self.taken_at[message["id"]] = now
                if message["id"] in self.waiting:
                    self.waiting[message["id"]].set()
                if message.get("priority", 0) < 0:
                    self.campaign_taken += 1
            if fresh:
                report = [
                    {
                        "id": m["id"],
                        "state": "Sent",
                        "recipients": [
                            {"phoneNumber": n, "state": "Sent"} for n in m["phoneNumbers"]
                        ],
                    }
                    for m in fresh
                ]
                await phone.call("PATCH", "/message", report)
            else:
                await asyncio.sleep(0.02)  # the app is woken by a push; a short poll stands in


async def _singles(
    http: httpx.AsyncClient, srv: Server, fleet: Fleet, count: int
) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {srv.key}"}
    accept_ms: list[float] = []
    taken_ms: list[float] = []
    rng = random.Random(5)
    for i in range(count):
        body = {"phoneNumbers": [f"+52155{rng.randrange(10**7, 10**8)}"], "message": f"Pedido {i}"}
        started = time.perf_counter()
        answer = await http.post(f"{srv.base}/api/v1/send", json=body, headers=auth)
        accepted = time.perf_counter()
        assert answer.status_code == 202, answer.text
        message_id = answer.json()["id"]
        event = fleet.waiting.setdefault(message_id, asyncio.Event())
        if message_id in fleet.taken_at:
            event.set()
        await asyncio.wait_for(event.wait(), 60)
        accept_ms.append((accepted - started) * 1000)
        taken_ms.append((fleet.taken_at[message_id] - started) * 1000)
    return {
        "sends": count,
        "accept_ms": {"p50": percentile(accept_ms, 0.5), "p99": percentile(accept_ms, 0.99)},
        "taken_ms": {"p50": percentile(taken_ms, 0.5), "p99": percentile(taken_ms, 0.99)},
    }


async def _run(srv: Server, args: argparse.Namespace) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {srv.key}"}
    data = _sheet(args.rows)
    async with httpx.AsyncClient(timeout=600) as http:
        phones = []
        for index in range(args.phones):
            made = await http.post(
                f"{srv.base}/api/devices/android", json={"name": f"p{index}"}, headers=auth
            )
            made.raise_for_status()
            phone = DeviceClient(f"{srv.base}/api/mobile/v1", http=http)
            await phone.register(pairing_token=made.json()["pairing"]["token"], name="bench")
            phones.append(phone)
        fleet = Fleet(phones)
        fleet.start()
        try:
            quiet = await _singles(http, srv, fleet, args.sends)
            started = time.perf_counter()
            created = await http.post(
                f"{srv.base}/api/campaigns",
                data={
                    "name": "bench",
                    "message": "Hola {nombre}, su cita es el {fecha} a las {hora}",
                },
                files={"file": ("agenda.csv", data, "text/csv")},
                headers=auth,
            )
            accept_seconds = time.perf_counter() - started
            assert created.status_code == 201, created.text
            campaign = created.json()
            taken_before = fleet.campaign_taken
            busy = await _singles(http, srv, fleet, args.sends)
            taken_during = fleet.campaign_taken - taken_before
        finally:
            await fleet.stop()
    return {
        "rows": args.rows,
        "csv_bytes": len(data),
        "accepted": campaign["accepted"],
        "rejected": len(campaign["rejected"]),
        "accept_seconds": round(accept_seconds, 2),
        "rows_per_second": round(args.rows / accept_seconds),
        "single_send_quiet": quiet,
        "single_send_during_campaign": busy,
        "campaign_messages_taken_meanwhile": taken_during,
        "ratio_taken_p99": round(busy["taken_ms"]["p99"] / quiet["taken_ms"]["p99"], 2)
        if quiet["taken_ms"]["p99"]
        else None,
        "ratio_accept_p99": round(busy["accept_ms"]["p99"] / quiet["accept_ms"]["p99"], 2)
        if quiet["accept_ms"]["p99"]
        else None,
    }


def bench_database(database: str, args: argparse.Namespace) -> dict[str, Any]:
    with server(database, args.pg_url) as srv:
        return asyncio.run(_run(srv, args))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--sends", type=int, default=100)
    parser.add_argument("--phones", type=int, default=4)
    database_arguments(parser)
    args = parser.parse_args()
    publish(
        "campaign",
        args,
        lambda db: bench_database(db, args),
        targets={"accept_seconds": "seconds (< 10)", "ratio_taken_p99": "single sends not starved"},
    )


if __name__ == "__main__":
    main()
