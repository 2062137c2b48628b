"""Wake-ups across processes: the hub's events travel through PostgreSQL LISTEN/NOTIFY.

Each process keeps one extra connection that LISTENs on a channel; what a process publishes is
delivered locally at once and NOTIFYed for the others, which deliver it to the streams they hold.
A lost notification costs latency only: phones poll on every (re)connect.

Only while there are others: each process says hello on the channel when it starts listening
and every HELLO_SECONDS, answers a newcomer's hello at once, and NOTIFYs its wake-ups only while
it has heard from another process within PEER_SECONDS. A lone server (the usual self-hosted
one) then sends none: under a load of sends they were a NOTIFY per round trip to the database,
each also read back by the process itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from functools import partial
from typing import Any

import asyncpg

from smsgate.config import Settings
from smsgate.notify.hub import Event, Hub
from smsgate.storage.db import asyncpg_dsn

log = logging.getLogger("smsgate.notify.pgnotify")

CHANNEL = "smsgate_wake"
RECONNECT_SECONDS = 2.0
HELLO_SECONDS = 10.0  # each process says it is listening this often
PEER_SECONDS = 3.5 * HELLO_SECONDS  # and is forwarded to for this long after it last spoke


def _set(event: asyncio.Event, _connection: Any) -> None:
    event.set()


class PgBridge:
    def __init__(self, hub: Hub, settings: Settings) -> None:
        self.hub = hub
        self.settings = settings
        self.origin = uuid.uuid4().hex
        self._connection: Any = None
        self._task: asyncio.Task[None] | None = None
        # one flusher at a time: an asyncpg connection runs one statement at a time
        self._pending: dict[str, None] = {}
        self._flusher: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self._peers: dict[str, float] = {}  # other processes' origins: when last heard
        self._peers_until = 0.0  # forward wake-ups until then (monotonic)
        self._hello = json.dumps({"origin": self.origin, "hello": True}, separators=(",", ":"))

    def start(self) -> None:
        self.hub.forward = self._forward
        self._task = asyncio.get_running_loop().create_task(self._run(), name="smsgate-pgnotify")

    async def stop(self) -> None:
        self.hub.forward = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self._close()

    async def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None
        self.ready.clear()

    async def _run(self) -> None:
        while True:
            try:
                closed = asyncio.Event()
                self._connection = await asyncpg.connect(asyncpg_dsn(self.settings))
                self._connection.add_termination_listener(partial(_set, closed))
                await self._connection.add_listener(CHANNEL, self._received)
                self.ready.set()
                while not closed.is_set():
                    self._notify(self._hello)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(closed.wait(), HELLO_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: keep trying
                log.warning("LISTEN connection lost: %s", exc)
            await self._close()
            await asyncio.sleep(RECONNECT_SECONDS)

    @property
    def peers(self) -> set[str]:
        """The other processes heard from lately."""
        since = time.monotonic() - PEER_SECONDS
        return {origin for origin, heard in self._peers.items() if heard > since}

    def _heard(self, origin: str) -> bool:
        """Note that `origin` is listening; True if it was not known (or had gone quiet)."""
        now = time.monotonic()
        last = self._peers.get(origin)
        new = last is None or last <= now - PEER_SECONDS
        if new:  # forget the processes that have gone quiet (restarted ones have new origins)
            self._peers = {o: t for o, t in self._peers.items() if t > now - PEER_SECONDS}
        self._peers[origin] = now
        self._peers_until = now + PEER_SECONDS
        return new

    def _received(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            note = json.loads(payload)
        except ValueError:
            return
        if not isinstance(note, dict) or note.get("origin") == self.origin:
            return
        if self._heard(str(note.get("origin"))) and note.get("hello"):
            self._notify(self._hello)  # a newcomer learns of this process at once
        event = Event(str(note.get("name", "")), note.get("data"))
        if event.name:
            self.hub.deliver_local(str(note.get("account")), note.get("device"), event)

    def _forward(self, account_id: str, device_id: str | None, event: Event) -> None:
        if self._connection is None or time.monotonic() >= self._peers_until:
            return  # no other process is listening: the hub delivered it here already
        payload = json.dumps(
            {
                "origin": self.origin,
                "account": account_id,
                "device": device_id,
                "name": event.name,
                "data": event.data,
            },
            separators=(",", ":"),
        )
        self._notify(payload)

    def _notify(self, payload: str) -> None:
        # Identical wake-ups published while a flush is under way are sent once: a burst of
        # sends to one account costs one NOTIFY, not one per message.
        self._pending[payload] = None
        if self._connection is not None and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending and self._connection is not None:
            batch = list(self._pending)
            self._pending.clear()
            try:
                for payload in batch:
                    await self._connection.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
            except Exception as exc:  # a lost hint: phones poll
                log.warning("NOTIFY failed: %s", exc)
