"""Cloud lines, served by the worker: the line loop of `whatsapp.lines` over the database.

Each ready cloud line gets a task that subscribes to the hub like a connected phone (so sends
wake it at once, and the presence jobs see it as connected), drains its queue through the Graph
API, and otherwise waits for a wake-up or the next tick. With several workers on PostgreSQL the
dispatch engine's claims (SKIP LOCKED) keep each message to one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from smsgate.config import Settings
from smsgate.devices import presence
from smsgate.devices.models import Device
from smsgate.kit import clock
from smsgate.messages import queue, reports, sweeps
from smsgate.notify.hub import Hub
from smsgate.storage.db import Database
from smsgate.whatsapp import cloud, lines, service

log = logging.getLogger("smsgate.whatsapp")

MAX_ROUNDS = 50  # pulls per wake-up; what is left waits for the next one
WINDOW_ERROR = (
    "outside WhatsApp's 24-hour customer service window: this person has not written to the "
    "line in the last 24 hours, so only a template message can start the conversation"
)


class DbLineQueue:
    """A cloud line's queue, reached through the dispatch engine in short transactions."""

    def __init__(self, database: Database, device_id: str) -> None:
        self.database = database
        self.device_id = device_id

    async def _device(self, session: Any) -> Device | None:
        device: Device | None = await session.get(Device, self.device_id)
        return device

    async def pull(self) -> list[dict[str, Any]]:
        async with self.database.transaction() as session:
            device = await self._device(session)
            if device is None or not (device.settings or {}).get("ready"):
                return []
            await presence.mark_seen(session, device)
            return await queue.pull(session, device, "fifo")

    async def acknowledge(self, message_id: str) -> None:
        await self.report(message_id, [], state="Processed")

    async def report(
        self, message_id: str, entries: list[dict[str, Any]], state: str | None = None
    ) -> None:
        item: dict[str, Any] = {"id": message_id, "recipients": entries}
        if state is not None:
            item["state"] = state
        async with self.database.transaction() as session:
            device = await self._device(session)
            if device is not None:
                await reports.report(session, device, [item])


class CloudLineSender:
    """The Graph API, behind the 24-hour rule: free-form text only inside the window."""

    def __init__(self, database: Database, device_id: str, graph: cloud.GraphApi) -> None:
        self.database = database
        self.device_id = device_id
        self.graph = graph

    async def send(self, message: lines.Outgoing) -> lines.Outcome:
        if message.template is None:
            async with self.database.reading() as session:
                device = await session.get(Device, self.device_id)
                if device is None:
                    return lines.Outcome(error="the line was deleted")
                if not await service.within_window(session, device, message.to):
                    return lines.Outcome(error=WINDOW_ERROR)
        return await self.graph.send(message)


class CloudLines:
    def __init__(
        self,
        app: FastAPI,
        http: httpx.AsyncClient | None = None,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self.stopping = stopping or asyncio.Event()
        self.database: Database = app.state.db
        self.settings: Settings = app.state.settings
        self.hub: Hub = app.state.hub
        self.http = http or httpx.AsyncClient(follow_redirects=False)
        self._own_http = http is None
        self.pacers: dict[str, lines.Pacer] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def pacer(self, device_id: str) -> lines.Pacer:
        if device_id not in self.pacers:
            interval = self.settings.whatsapp_recipient_interval_seconds
            self.pacers[device_id] = lines.Pacer(per_recipient=interval)
        return self.pacers[device_id]

    async def ready_lines(self) -> list[tuple[str, str]]:
        """(device id, account id) of every cloud line with complete credentials."""
        async with self.database.reading() as session:
            rows = await session.execute(
                select(Device.id, Device.account_id, Device.settings).where(
                    Device.type == "whatsapp", Device.provider == "cloud"
                )
            )
            return [(r.id, r.account_id) for r in rows if (r.settings or {}).get("ready")]

    async def serve_line(self, device_id: str) -> int:
        """Drain one line's queue now; returns how many messages it handled."""
        async with self.database.reading() as session:
            device = await session.get(Device, device_id)
            if device is None:
                return 0
            keys = service.credentials(device, self.settings)
        if not keys.complete():
            return 0
        graph = cloud.GraphApi(self.http, self.settings.whatsapp_graph_url, keys)
        queue = DbLineQueue(self.database, device_id)
        sender = CloudLineSender(self.database, device_id, graph)
        handled = 0
        for _ in range(MAX_ROUNDS):
            if self.stopping.is_set():
                break
            count = await lines.serve_once(queue, sender, self.pacer(device_id), self.stopping)
            handled += count
            if count == 0:
                break
        return handled

    async def serve_all(self) -> int:
        """One pass over every ready line (tests and `smsgate worker --once` use it). A line that
        fails (its Graph API down, credentials sealed with another secret key) is logged and
        skipped; the others are served all the same, as by run_forever."""
        found = await self.ready_lines()
        counts = await asyncio.gather(
            *(self.serve_line(line) for line, _ in found), return_exceptions=True
        )
        for (line, _), count in zip(found, counts, strict=True):
            if isinstance(count, Exception):
                log.error("WhatsApp cloud line %s failed", line, exc_info=count)
            elif isinstance(count, BaseException):
                raise count
        return sum(count for count in counts if isinstance(count, int))

    async def _line_forever(self, device_id: str, account_id: str, interval: float) -> None:
        subscription = self.hub.subscribe(device_id, account_id)
        try:
            while not self.stopping.is_set():
                try:
                    await self.serve_line(device_id)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("WhatsApp cloud line %s failed; retrying", device_id)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(subscription.queue.get(), interval)
        finally:
            self.hub.unsubscribe(subscription)

    async def run_forever(self, interval: float) -> None:
        """Keep one task per ready line; lines deleted or no longer ready lose theirs."""
        try:
            while not self.stopping.is_set():
                try:
                    found = dict(await self.ready_lines())
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("listing WhatsApp cloud lines failed")
                    found = {line: "" for line in self._tasks}
                for line, task in list(self._tasks.items()):
                    if line not in found or task.done():
                        task.cancel()
                        del self._tasks[line]
                for line, account in found.items():
                    if line not in self._tasks:
                        self._tasks[line] = asyncio.get_running_loop().create_task(
                            self._line_forever(line, account, interval),
                            name=f"smsgate-whatsapp-{line}",
                        )
                await clock.wait(self.stopping, interval)
            # let the lines finish the message in hand (their loops see `stopping`)
            if self._tasks:
                await asyncio.wait(list(self._tasks.values()))
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._own_http:
            await self.http.aclose()


async def fail_stalled(database: Database, older_than: timedelta) -> int:
    """Recipients a WhatsApp line acknowledged but never reported on (its loop died while
    sending) fail with `outcome_unknown` rather than being sent twice."""
    return await sweeps.fail_all_stalled(
        database,
        queue.WHATSAPP_CHANNELS,
        clock.now() - older_than,
        "outcome_unknown: the line stopped while sending; the message may or may not have "
        "arrived, check before sending it again",
    )
