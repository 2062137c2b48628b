"""What the server takes from its phones: received messages and state reports, per second.

Starts a real uvicorn (one process) per database, pairs `--phones` simulated Android devices
through the API, then for `--duration` seconds per phase:
- inbound: every phone posts received SMS one at a time (`POST /api/mobile/v1/inbox`), from a
  pool of 2,000 senders (threads are created, then found again);
- reports: messages are queued to the phones first (`POST /api/v1/send` with `deviceId`); each
  phone pulls them (`GET /message`) and reports each one as the app does, one `PATCH /message`
  per state (Processed, Sent, Delivered), one message at a time;
- end to end: as many fresh phones, simulated as in the tests (an event stream that wakes a
  pull, then three reports per message, several messages at once), take and deliver
  `--end-to-end` sends made with no device chosen: messages delivered a second, all included,
  and the pulls and reports the server answered per message.
In the first two phases each phone is one connection doing one request at a time, like the
app. Prints one JSON document: requests/s, p50/p99 latency and the server's CPU per request for
the first two phases; for the last, how long the sends took to be accepted and to be delivered,
and the server's CPU per message.

    .venv/bin/python bench/phone_throughput.py [--phones 16] [--duration 8]
        [--end-to-end 1000] [--database sqlite|postgresql|both] [--pg-url ...]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SCRAPER, Server, database_arguments, percentile, publish, server

from smsgate.agents.phone import DeviceClient, MobileError
from smsgate.agents.simulator import SimulatedPhone

_SENDERS = [f"+52155{n:08d}" for n in random.Random(7).sample(range(10**8), 2_000)]


async def _pair(http: httpx.AsyncClient, srv: Server, index: int) -> DeviceClient:
    auth = {"Authorization": f"Bearer {srv.key}"}
    made = await http.post(
        f"{srv.base}/api/devices/android", json={"name": f"p{index}"}, headers=auth
    )
    made.raise_for_status()
    phone = DeviceClient(f"{srv.base}/api/mobile/v1", http=httpx.AsyncClient(timeout=60))
    await phone.register(pairing_token=made.json()["pairing"]["token"], name=f"bench/{index}")
    return phone


class _Phase:
    """One phase's requests: each timed, failures counted (the run goes on), then the figures
    with the server's CPU over the phase."""

    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.latencies: list[float] = []
        self.errors = 0

    async def timed(self, request: Awaitable[Any]) -> None:
        started = time.perf_counter()
        try:
            await request
        except (httpx.HTTPError, MobileError):
            self.errors += 1
            return
        self.latencies.append((time.perf_counter() - started) * 1000)

    async def run(self, phones: Iterable[Awaitable[None]]) -> dict[str, Any]:
        started, cpu = time.monotonic(), self.srv.cpu_seconds()
        await asyncio.gather(*phones)
        seconds, used = time.monotonic() - started, self.srv.cpu_seconds() - cpu
        done = self.latencies
        return {
            "requests": len(done),
            "errors": self.errors,
            "rps": round(len(done) / seconds, 1) if seconds else 0.0,
            "p50_ms": percentile(done, 0.50),
            "p99_ms": percentile(done, 0.99),
            # the server's processes' CPU per request: what each one costs, whatever the
            # machine is otherwise doing
            "server_cpu_ms_per_request": round(used * 1000 / len(done), 2) if done else None,
            "server_cpu_share": round(used / seconds, 2) if seconds else None,
        }


async def _inbound(srv: Server, phones: list[DeviceClient], duration: float) -> dict[str, Any]:
    phase = _Phase(srv)
    rng = random.Random(1)
    deadline = time.monotonic() + duration

    async def run(phone: DeviceClient) -> None:
        while time.monotonic() < deadline:
            item = {
                "phoneNumber": rng.choice(_SENDERS),
                "message": "Hola, recibido",
                "type": "sms",
                "receivedAt": datetime.now(UTC).isoformat(),
            }
            await phase.timed(phone.inbox([item]))

    return await phase.run(run(p) for p in phones)


async def _queue(srv: Server, phones: list[DeviceClient], per_phone: int) -> None:
    auth = {"Authorization": f"Bearer {srv.key}"}
    async with httpx.AsyncClient(timeout=60) as http:

        async def send(phone: DeviceClient, i: int) -> None:
            body = {
                "phoneNumbers": [_SENDERS[i % len(_SENDERS)]],
                "message": f"Pedido {i} listo",
                "deviceId": phone.device_id,
            }
            answer = await http.post(f"{srv.base}/api/v1/send", json=body, headers=auth)
            answer.raise_for_status()

        for start in range(0, per_phone, 25):
            await asyncio.gather(
                *(
                    send(phone, n * per_phone + i)
                    for n, phone in enumerate(phones)
                    for i in range(start, min(per_phone, start + 25))
                )
            )


async def _reports(srv: Server, phones: list[DeviceClient], duration: float) -> dict[str, Any]:
    phase = _Phase(srv)
    deadline = time.monotonic() + duration

    async def run(phone: DeviceClient) -> None:
        while time.monotonic() < deadline:
            pulled = await phone.pull("fifo")
            if not pulled:
                return
            for message in pulled:
                numbers = message["phoneNumbers"]
                history: dict[str, datetime] = {}
                for state in ("Processed", "Sent", "Delivered"):
                    if time.monotonic() >= deadline:
                        return
                    history[state] = datetime.now(UTC)
                    recipients = [(n, state, None) for n in numbers]
                    await phase.timed(phone.report(message["id"], state, recipients, history))

    return await phase.run(run(p) for p in phones)


async def _end_to_end(srv: Server, phones: list[DeviceClient], count: int) -> dict[str, Any]:
    """`count` sends (no device chosen) taken and delivered by simulated phones that pull when
    their event stream wakes them and report each message Processed, Sent, Delivered at once."""
    sims = [SimulatedPhone(p, send_delay=0, delivery_delay=0, seed=i) for i, p in enumerate(phones)]
    tasks = [asyncio.get_running_loop().create_task(sim.run()) for sim in sims]
    try:
        for _ in range(600):
            if all(sim.connected.is_set() for sim in sims):
                break
            await asyncio.sleep(0.05)
        auth = {"Authorization": f"Bearer {srv.key}"}
        requests_before = await _phone_requests(srv)
        started, cpu = time.monotonic(), srv.cpu_seconds()
        async with httpx.AsyncClient(timeout=60) as http:

            async def send(i: int) -> None:
                body = {"phoneNumbers": [_SENDERS[i % len(_SENDERS)]], "message": f"Aviso {i}"}
                answer = await http.post(f"{srv.base}/api/v1/send", json=body, headers=auth)
                answer.raise_for_status()

            for start in range(0, count, 50):
                await asyncio.gather(*(send(i) for i in range(start, min(count, start + 50))))
        accepted = time.monotonic() - started
        deadline = started + 600
        while sum(sim.stats.delivered for sim in sims) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        seconds = time.monotonic() - started
        delivered = sum(sim.stats.delivered for sim in sims)
        return {
            "messages": count,
            "delivered": delivered,
            "sends_accepted_s": round(accepted, 2),
            "all_delivered_s": round(seconds, 2),
            "delivered_per_s": round(delivered / seconds, 1),
            "server_cpu_ms_per_message": round((srv.cpu_seconds() - cpu) * 1000 / count, 2),
            **{
                f"{kind}_per_message": round((made - requests_before[kind]) / count, 2)
                for kind, made in (await _phone_requests(srv)).items()
            },
        }
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


_PHONE_ROUTES = {"pulls": ("GET", "/message"), "reports": ("PATCH", "/message")}


async def _phone_requests(srv: Server) -> dict[str, float]:
    """Pulls and state reports the server has answered so far (its /metrics counters)."""
    async with httpx.AsyncClient(timeout=30) as http:
        text = (await http.get(f"{srv.base}/metrics", headers=SCRAPER)).text
    counts = dict.fromkeys(_PHONE_ROUTES, 0.0)
    for line in text.splitlines():
        if not line.startswith("smsgate_http_requests_total{"):
            continue
        for kind, (method, path) in _PHONE_ROUTES.items():
            if f'method="{method}"' in line and f'route="/api/mobile/v1{path}"' in line:
                counts[kind] += float(line.rsplit(" ", 1)[1])
    return counts


def bench_database(database: str, args: argparse.Namespace) -> dict[str, Any]:
    with server(database, args.pg_url) as srv:

        async def measure() -> dict[str, Any]:
            async with httpx.AsyncClient(timeout=60) as http:
                phones = [await _pair(http, srv, i) for i in range(args.phones)]
            try:
                await _inbound(srv, phones, 1.0)  # warm-up
                inbound = await _inbound(srv, phones, args.duration)
                await _queue(srv, phones, args.messages)
                reports = await _reports(srv, phones, args.duration)
                async with httpx.AsyncClient(timeout=60) as http:  # phones with empty queues
                    fresh = [await _pair(http, srv, args.phones + i) for i in range(args.phones)]
                phones += fresh
                end_to_end = await _end_to_end(srv, fresh, args.end_to_end)
            finally:
                for phone in phones:
                    await phone.http.aclose()
            return {"inbound": inbound, "reports": reports, "end_to_end": end_to_end}

        return asyncio.run(measure())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--phones", type=int, default=16)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument(
        "--messages", type=int, default=200, help="messages queued to each phone for the reports"
    )
    parser.add_argument(
        "--end-to-end", type=int, default=1000, help="sends delivered through the phones"
    )
    database_arguments(parser)
    args = parser.parse_args()
    publish(
        "phone_throughput",
        args,
        lambda db: bench_database(db, args),
        phones=args.phones,
        duration_s=args.duration,
    )


if __name__ == "__main__":
    main()
