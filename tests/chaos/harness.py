"""Faults injected from outside into a real `smsgate serve`: the server SIGKILLed and started
again, PostgreSQL's connections terminated, a webhook receiver gone. Each scenario returns its
figures (a dict, printed as JSON by `make chaos`); tests/chaos/test_chaos.py runs them small
and asserts what they must show.

A server runs on its own data folder and, on PostgreSQL, in a database of its own (so that its
connections, and only its, can be terminated).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import make_url

from smsgate.agents.phone import DeviceClient, MobileError
from tests.serving import free_port, serving_asgi
from tests.webhooks.receiver import Receiver

PASSWORD = "chaos-Contraseña-2026"
REPO = Path(__file__).resolve().parents[2]
SMSGATE = Path(sys.executable).parent / "smsgate"
RETRYABLE = (httpx.TransportError,)
OLD_DISABLE_THRESHOLD = 100  # failed attempts in a row that once disabled a webhook


def _group(pgid: int) -> list[int]:
    """Processes of a process group (the server started its own session)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found


@dataclass
class Server:
    """`smsgate serve` on one port and one database, which can be killed and started again."""

    folder: Path
    database_url: str = ""  # empty: SQLite in `folder`
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    orphans: int = 0  # helper processes still alive 10 s after their server was killed

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> float:
        """Start it and wait for /health/ready; returns the seconds that took."""
        env = {
            **os.environ,
            "SMSGATE_DATA_DIR": str(self.folder),
            "SMSGATE_PORT": str(self.port),
            "SMSGATE_HOST": "127.0.0.1",
            "SMSGATE_WEBHOOKS_ALLOW_PRIVATE": "true",
            "SMSGATE_LOG_LEVEL": "warning",
            **({"SMSGATE_DATABASE_URL": self.database_url} if self.database_url else {}),
            **self.extra_env,
        }
        began = time.monotonic()
        self.starts += 1
        log = open(self.folder / f"server-{self.starts}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(SMSGATE), "serve"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        while time.monotonic() - began < timeout:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self.log()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    return time.monotonic() - began
            time.sleep(0.05)
        raise AssertionError(f"not ready in {timeout} s: {self.log()[-3000:]}")

    def log(self) -> str:
        return (self.folder / f"server-{self.starts}.log").read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the server process alone, as the kernel's OOM killer or a crash would; its
        helper processes must then end by themselves."""
        assert self.process is not None
        pgid = self.process.pid
        self.process.kill()
        self.process.wait()
        deadline = time.monotonic() + 10
        while (left := _group(pgid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        if left:
            self.orphans += len(left)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@contextlib.asynccontextmanager
async def server(
    folder: Path, pg_url: str = "", extra_env: dict[str, str] | None = None
) -> AsyncIterator[Server]:
    """A started server on SQLite in `folder`, or on a new PostgreSQL database beside `pg_url`'s
    (dropped afterwards)."""
    folder.mkdir(parents=True, exist_ok=True)
    database_url = ""
    name = ""
    if pg_url:
        name = f"chaos_{secrets.token_hex(5)}"
        await _admin(pg_url, f'CREATE DATABASE "{name}"')
        database_url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    running = Server(folder, database_url, dict(extra_env or {}))
    try:
        await asyncio.to_thread(running.start)
        yield running
    finally:
        await asyncio.to_thread(running.stop)
        if name:
            await _admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(pg_url: str, statement: str) -> None:
    connection = await asyncpg.connect(_dsn(pg_url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _restart(running: Server) -> float:
    """Kill the server and start it again; the seconds until it was ready."""
    began = time.monotonic()
    await asyncio.to_thread(running.kill)
    await asyncio.to_thread(running.start)
    return time.monotonic() - began


def _number() -> str:
    """A Mexico City mobile number at random (consecutive ones would trip the anti-abuse
    guard against walking through a number range)."""
    return f"+52155{secrets.randbelow(10**8):08d}"


@dataclass
class Account:
    http: httpx.AsyncClient
    key: str
    csrf: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def account(base: str) -> Account:
    http = httpx.AsyncClient(base_url=base, timeout=30)
    email = f"chaos-{secrets.token_hex(4)}@example.com"
    signed = await http.post("/api/auth/signup", json={"email": email, "password": PASSWORD})
    assert signed.status_code == 201, signed.text
    csrf = signed.json()["csrfToken"]
    key = await http.post("/api/keys", json={"name": "chaos"}, headers={"X-CSRF-Token": csrf})
    assert key.status_code == 201, key.text
    return Account(http, key.json()["key"], csrf)


async def persist(call: Callable[[], Awaitable[httpx.Response]], retries: Counter[str]) -> Any:
    """Call until the server answers other than 'not now' (a dropped connection, 502-504),
    as a client that retries would; returns that answer."""
    while True:
        try:
            answer = await call()
        except RETRYABLE:
            retries["connection"] += 1
        else:
            if answer.status_code not in (502, 503, 504):
                return answer
            retries[str(answer.status_code)] += 1
        await asyncio.sleep(0.05)


async def _all_messages(user: Account) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = await user.http.get("/api/v1/messages", params=params, headers=user.auth)
        assert page.status_code == 200, page.text
        found.extend(page.json()["data"])
        cursor = page.json().get("nextCursor")
        if not cursor:
            return found


async def sends_through_crashes(
    running: Server, sends: int = 200, kills: int = 3, concurrency: int = 8
) -> dict[str, Any]:
    """`sends` sends, each with its own externalId and retried by its client until answered,
    while the server is SIGKILLed and started again `kills` times: every accepted send must
    exist exactly once."""
    user = await account(running.url)
    run = secrets.token_hex(3)
    accepted: dict[str, str] = {}  # externalId -> the id answered
    refused: Counter[str] = Counter()
    retries: Counter[str] = Counter()
    replays: Counter[int] = Counter()  # 200: a retry of a send committed before a crash
    todo = list(range(sends))
    recoveries: list[float] = []
    began = time.monotonic()

    async def client() -> None:
        while todo:
            i = todo.pop()
            external = f"chaos-{run}-{i}"
            body = {
                "phoneNumbers": [_number()],
                "message": f"Recordatorio {i}",
                "externalId": external,
            }
            answer = await persist(
                partial(user.http.post, "/api/v1/send", json=body, headers=user.auth), retries
            )
            if answer.status_code in (200, 202):
                accepted[external] = answer.json()["id"]
                replays[answer.status_code] += 1
            else:
                refused[f"{answer.status_code} {answer.json().get('code')}"] += 1

    async def killer() -> None:
        for k in range(1, kills + 1):
            while len(accepted) < sends * k // (kills + 1) and todo:
                await asyncio.sleep(0.01)
            recoveries.append(await _restart(running))

    await asyncio.gather(killer(), *(client() for _ in range(concurrency)))
    stored = [m for m in await _all_messages(user) if m.get("externalId", "").startswith("chaos")]
    copies = Counter(m["externalId"] for m in stored)
    ids = {m["externalId"]: m["id"] for m in stored}
    await user.http.aclose()
    return {
        "sends": sends,
        "accepted": len(accepted),
        "answered_202_200": [replays[202], replays[200]],
        "refused": dict(refused),
        "lost": sum(1 for e in accepted if e not in ids),
        "answered_another_id": sum(1 for e, i in accepted.items() if ids.get(e, i) != i),
        "duplicated": sum(n - 1 for n in copies.values() if n > 1),
        "kills": kills,
        "client_retries": dict(retries),
        "recover_seconds_max": round(max(recoveries, default=0.0), 2),
        "orphan_processes": running.orphans,
        "seconds": round(time.monotonic() - began, 1),
    }


async def _pair(user: Account, base: str, name: str) -> DeviceClient:
    created = await user.http.post("/api/devices/android", json={"name": name}, headers=user.auth)
    assert created.status_code == 201, created.text
    phone = DeviceClient(base + "/api/mobile/v1", timeout=30)
    await phone.register(pairing_token=created.json()["pairing"]["token"], name=name)
    return phone


async def phones_through_crashes(
    running: Server, phones: int = 4, messages: int = 120, kills: int = 2
) -> dict[str, Any]:
    """Phones pull and report `messages` queued sends while the server is killed and started
    again: every message must be sent by exactly one phone, and end `sent`."""
    user = await account(running.url)
    retries: Counter[str] = Counter()
    clients = [await _pair(user, running.url, f"chaos/{n}") for n in range(phones)]
    senders: dict[str, set[int]] = defaultdict(set)
    recoveries: list[float] = []
    began = time.monotonic()
    done = asyncio.Event()

    async def phone_loop(n: int, phone: DeviceClient) -> None:
        while not done.is_set():
            try:
                items = await phone.pull()
                for item in items:
                    senders[item["id"]].add(n)  # the phone sends it (once per phone)
                    numbers = item["phoneNumbers"]
                    await phone.report(item["id"], "Sent", [(p, "Sent", None) for p in numbers])
            except (MobileError, *RETRYABLE) as exc:
                status = getattr(exc, "status", "connection")
                retries[str(status)] += 1
                if isinstance(exc, MobileError) and exc.status not in (502, 503, 504):
                    raise
            if len(senders) >= messages:
                done.set()
            await asyncio.sleep(0.05)

    async def sender() -> None:
        """The messages in waves, the server killed in the middle of each wave's dispatch."""
        wave = messages // (kills + 1)
        for k in range(kills + 1):
            count = wave if k < kills else messages - wave * kills
            for i in range(count):
                body = {"phoneNumbers": [_number()], "message": f"Aviso {k}.{i}"}
                answer = await persist(
                    partial(user.http.post, "/api/v1/send", json=body, headers=user.auth), retries
                )
                assert answer.status_code == 202, answer.text
            if k < kills:
                while len(senders) < wave * k + wave // 2:
                    await asyncio.sleep(0.005)
                recoveries.append(await _restart(running))

    loops = [asyncio.create_task(phone_loop(n, c)) for n, c in enumerate(clients)]
    try:
        await asyncio.wait_for(sender(), 300)
        await asyncio.wait_for(done.wait(), 300)
    finally:
        done.set()
        await asyncio.gather(*loops, return_exceptions=True)
    states: Counter[str] = Counter()
    for message in await _all_messages(user):
        states[message["state"]] += 1
    for phone in clients:
        await phone.aclose()
    await user.http.aclose()
    return {
        "phones": phones,
        "messages": messages,
        "taken": len(senders),
        "sent_by_two_phones": sum(1 for who in senders.values() if len(who) > 1),
        "states": dict(states),
        "kills": kills,
        "phone_retries": dict(retries),
        "recover_seconds_max": round(max(recoveries, default=0.0), 2),
        "orphan_processes": running.orphans,
        "seconds": round(time.monotonic() - began, 1),
    }


async def receiver_outage(
    running: Server, events: int = 60, outage_seconds: float = 20.0
) -> dict[str, Any]:
    """A receiver down (connection refused) long enough for more failed attempts than once
    disabled a webhook, with events arriving throughout; then up. Every event must reach it
    exactly once, and a healthy receiver beside it too, with no replay by hand. The server
    runs with a short retry schedule (SMSGATE_WEBHOOK_RETRY_SCHEDULE) so that this takes
    seconds, not the default's hours."""
    user = await account(running.url)
    phone = await _pair(user, running.url, "chaos/inbound")
    down, healthy = Receiver(), Receiver()
    port = free_port()
    hooks = {}
    async with serving_asgi(healthy) as healthy_port:
        for name, url in (
            ("down", f"http://127.0.0.1:{port}/hook"),
            ("healthy", f"http://127.0.0.1:{healthy_port}/hook"),
        ):
            made = await user.http.post(
                "/api/webhooks", json={"url": url, "events": ["sms:received"]}, headers=user.auth
            )
            assert made.status_code == 201, made.text
            hooks[name] = made.json()["id"]
        began = time.monotonic()
        sent = 0
        while time.monotonic() - began < outage_seconds or sent < events:
            batch = min(max(1, events // 10), events - sent)
            if batch:
                await phone.inbox(
                    [
                        {"phoneNumber": "+5215512345678", "message": f"m{j}", "id": f"c{j}"}
                        for j in range(sent, sent + batch)
                    ]
                )
                sent += batch
            await asyncio.sleep(outage_seconds / 10)
        attempts = await _attempts(user, hooks["down"])
        outage = time.monotonic() - began
        async with serving_asgi(down, port=port):
            back = time.monotonic()
            while time.monotonic() - back < 120:
                if len(_texts(down)) >= events and len(_texts(healthy)) >= events:
                    break
                await asyncio.sleep(0.2)
            drained = time.monotonic() - back
        shown = await user.http.get(f"/api/webhooks/{hooks['down']}", headers=user.auth)
    await phone.aclose()
    await user.http.aclose()
    return {
        "events": events,
        "outage_seconds": round(outage, 1),
        "failed_attempts_during_outage": attempts,
        "old_disable_threshold": OLD_DISABLE_THRESHOLD,
        "still_enabled": shown.json()["enabled"],
        "delivered": len(set(_texts(down))),
        "duplicated": sum(n - 1 for n in _texts(down).values() if n > 1),
        "healthy_delivered": len(set(_texts(healthy))),
        "lost": events - len(set(_texts(down))),
        "seconds_to_drain": round(drained, 1),
    }


def _texts(receiver: Receiver) -> Counter[str]:
    return Counter(json.loads(r.body)["payload"]["message"] for r in receiver.requests)


async def _attempts(user: Account, hook_id: str) -> int:
    """Attempts made so far on a webhook's deliveries, from its delivery log."""
    total = 0
    cursor = None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = await user.http.get(
            f"/api/webhooks/{hook_id}/deliveries", params=params, headers=user.auth
        )
        assert page.status_code == 200, page.text
        total += sum(d["attempts"] for d in page.json()["data"])
        cursor = page.json().get("nextCursor")
        if not cursor:
            return total


async def connections_terminated(
    running: Server, pg_url: str, seconds: float = 15.0, every: float = 1.5
) -> dict[str, Any]:
    """Sends, reads and phone polls while every PostgreSQL connection of the server is
    terminated every `every` seconds: no answer may be a 500."""
    user = await account(running.url)
    phone = await _pair(user, running.url, "chaos/pg")
    database = make_url(running.database_url).database
    statuses: Counter[int] = Counter()
    transport_errors = 0
    terminated = 0
    stop = asyncio.Event()

    async def load(make: Callable[[int], Awaitable[httpx.Response]]) -> None:
        nonlocal transport_errors
        i = 0
        while not stop.is_set():
            i += 1
            try:
                statuses[(await make(i)).status_code] += 1
            except RETRYABLE:
                transport_errors += 1
            await asyncio.sleep(0.005)

    async def poll(_: int) -> httpx.Response:
        return await phone.http.get(
            f"{running.url}/api/mobile/v1/message", headers=phone._headers()
        )

    def send(i: int) -> Awaitable[httpx.Response]:
        body = {"phoneNumbers": [_number()], "message": f"pg {i}"}
        return user.http.post("/api/v1/send", json=body, headers=user.auth)

    def read(_: int) -> Awaitable[httpx.Response]:
        return user.http.get("/api/v1/messages", params={"limit": 5}, headers=user.auth)

    async def terminator() -> None:
        nonlocal terminated
        connection = await asyncpg.connect(_dsn(pg_url))
        try:
            began = time.monotonic()
            while time.monotonic() - began < seconds:
                await asyncio.sleep(every)
                terminated += await connection.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    database,
                )
        finally:
            await connection.close()
            stop.set()

    began = time.monotonic()
    await asyncio.gather(terminator(), load(send), load(send), load(read), load(poll))
    await phone.aclose()
    await user.http.aclose()
    return {
        "seconds": round(time.monotonic() - began, 1),
        "connections_terminated": terminated,
        "answers": {str(k): v for k, v in sorted(statuses.items())},
        "errors_500": sum(v for k, v in statuses.items() if k >= 500 and k != 503),
        "transport_errors": transport_errors,
    }
