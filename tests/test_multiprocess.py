"""Two API processes and a worker on one PostgreSQL, 200 simulated phones streaming from
process A, sends through process B, and process A killed with SIGKILL mid-run: the phones fail
over to B, every message is sent by exactly one phone and delivered, and its webhook arrives
once."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from smsgate.agents.phone import DeviceClient
from smsgate.agents.simulator import SimulatedPhone
from tests.factories import PASSWORD, unique_email
from tests.serving import free_port
from tests.webhooks.receiver import receiving

PHONES = 200
MESSAGES = 1000

pytestmark = pytest.mark.skipif(
    not os.environ.get("SMSGATE_TEST_DATABASE_URL"),
    reason="several processes share one database on PostgreSQL only (SQLite is one process)",
)


def _env(settings, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "SMSGATE_DATA_DIR": str(settings.data_dir),
        "SMSGATE_DATABASE_URL": settings.database_url,
        "SMSGATE_DATABASE_SCHEMA": settings.database_schema,
        "SMSGATE_SECRET_KEY": settings.secret_key,
        "SMSGATE_WEBHOOKS_ALLOW_PRIVATE": "true",
        "SMSGATE_EMBEDDED_WORKER": "false",
        "SMSGATE_WORKER_INTERVAL_SECONDS": "1",
        "SMSGATE_PORT": str(port),
        "SMSGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SMSGATE_LOG_LEVEL": "warning",
    }


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "smsgate"), *command],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def _healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as http:
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if (await http.get(base + "/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.2)


class FailoverClient(DeviceClient):
    """A phone behind a load balancer: when its server stops answering, the next one does."""

    def __init__(self, urls: list[str], http: httpx.AsyncClient) -> None:
        super().__init__(urls[0], http=http)
        self.urls = urls
        self.failovers = 0

    def _next(self, failed: str) -> None:
        if self.base_url == failed:
            self.base_url = self.urls[(self.urls.index(failed) + 1) % len(self.urls)]
            self.failovers += 1

    async def _call(
        self, method: str, path: str, body: Any = None, authorization: str | None = None
    ) -> httpx.Response:
        for attempt in range(4):
            current = self.base_url
            try:
                return await super()._call(method, path, body, authorization)
            except httpx.TransportError:
                self._next(current)
                if attempt == 3:
                    raise
                await asyncio.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        current = self.base_url
        try:
            async for item in super().events():
                yield item
        except httpx.TransportError:
            self._next(current)
            raise


async def _until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.25)


async def test_kill_one_api_process_mid_run_loses_nothing(settings, tmp_path) -> None:
    port_a, port_b = free_port(), free_port()
    a_url, b_url = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    logs = {name: tmp_path / f"{name}.log" for name in ("a", "b", "worker")}
    a = _start(["serve", "--no-migrate"], _env(settings, port_a), logs["a"])
    b = _start(["serve", "--no-migrate"], _env(settings, port_b), logs["b"])
    worker = _start(["worker"], _env(settings, free_port()), logs["worker"])
    limits = httpx.Limits(max_connections=PHONES * 3, max_keepalive_connections=PHONES * 3)
    phone_http = httpx.AsyncClient(timeout=30, limits=limits)
    api = httpx.AsyncClient(base_url=b_url, timeout=30)
    tasks: list[asyncio.Task[None]] = []
    try:
        await _healthy(a_url, a, logs["a"])
        await _healthy(b_url, b, logs["b"])
        # an account with a key and a webhook, all through process B
        signed = await api.post(
            "/api/auth/signup", json={"email": unique_email("mp"), "password": PASSWORD}
        )
        assert signed.status_code == 201, signed.text
        csrf = {"X-CSRF-Token": signed.json()["csrfToken"]}
        key = (await api.post("/api/keys", json={"name": "mp"}, headers=csrf)).json()["key"]
        auth = {"Authorization": f"Bearer {key}"}
        async with receiving() as receiver:
            hook = await api.post(
                "/api/webhooks",
                json={"url": receiver.url, "events": ["sms:delivered"]},
                headers=auth,
            )
            assert hook.status_code == 201, hook.text
            # 200 phones paired, streaming from process A
            phones: list[SimulatedPhone] = []
            clients: list[FailoverClient] = []
            for index in range(PHONES):
                made = await api.post(
                    "/api/devices/android", json={"name": f"p{index}"}, headers=auth
                )
                assert made.status_code == 201, made.text
                client = FailoverClient(
                    [a_url + "/api/mobile/v1", b_url + "/api/mobile/v1"], phone_http
                )
                await client.register(pairing_token=made.json()["pairing"]["token"])
                clients.append(client)
                phones.append(SimulatedPhone(client, delivery_delay=0.2, seed=index))
            tasks = [asyncio.get_running_loop().create_task(p.run()) for p in phones]
            await _until(
                lambda: _all_connected(phones), 60, "every phone's event stream on process A"
            )

            rng = random.Random(7)
            numbers = {f"+52155{rng.randrange(10**8):08d}" for _ in range(MESSAGES * 2)}
            targets = sorted(numbers)[:MESSAGES]
            ids: list[str] = []

            async def send(number: str) -> None:
                resp = await api.post(
                    "/api/v1/send",
                    json={"phoneNumbers": [number], "message": "hola"},
                    headers=auth,
                )
                assert resp.status_code == 202, resp.text
                ids.append(resp.json()["id"])

            for start in range(0, MESSAGES, 50):
                await asyncio.gather(*(send(n) for n in targets[start : start + 50]))
                if start == MESSAGES // 2:
                    await _until(
                        lambda: _delivered_at_least(api, auth, MESSAGES // 5),
                        60,
                        "a fifth of the messages delivered before the kill",
                    )
                    _stop(a, signal.SIGKILL)  # mid-run: streams, pulls and reports cut
            await _until(
                lambda: _delivered_at_least(api, auth, MESSAGES), 120, "every message delivered"
            )
            await _until(lambda: _true(len(receiver.requests) >= MESSAGES), 60, "every webhook")
            await asyncio.sleep(2)  # a duplicate delivery would show up by now
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await phone_http.aclose()
        await api.aclose()
        for proc in (a, b, worker):
            _stop(proc)
        for name, log in logs.items():  # shown by pytest only when the test fails
            print(f"--- process {name}, last lines ---\n{log.read_text()[-3000:]}")
    handled = Counter(i for p in phones for i in p.handled)
    assert set(handled) == set(ids), "a message was never handed to a phone"
    assert max(handled.values()) == 1, "a message was handed to two phones"
    assert sum(c.failovers for c in clients) >= PHONES, "the phones did not fail over to B"
    per_message = Counter(json.loads(r.body)["payload"]["messageId"] for r in receiver.requests)
    assert set(per_message) == set(ids)
    assert max(per_message.values()) == 1, "a webhook was delivered twice"


async def _true(value: bool) -> bool:
    return value


async def _all_connected(phones: list[SimulatedPhone]) -> bool:
    return all(p.connected.is_set() for p in phones)


async def _delivered_at_least(api: httpx.AsyncClient, auth: dict[str, str], count: int) -> bool:
    """At least `count` messages in state delivered (walking the pages)."""
    seen, cursor = 0, None
    while True:
        params: dict[str, Any] = {"state": "delivered", "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/api/v1/messages", params=params, headers=auth)).json()
        seen += len(page["data"])
        cursor = page.get("nextCursor")
        if seen >= count or not cursor:
            return seen >= count
