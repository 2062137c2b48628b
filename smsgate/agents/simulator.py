"""A simulated phone: registers like the app, keeps SSE open, pulls, "sends", and reports
Processed → Sent → Delivered/Failed with realistic delays; optionally receives messages."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from smsgate.agents.phone import DeviceClient, MobileError

log = logging.getLogger("smsgate.simulator")

RECONNECT_DELAYS = (1, 1, 2, 5, 5, 30)
REPORT_RETRY_DELAYS = (0.5, 1, 2, 5, 10, 30, 60)  # a state report is kept until it lands


# what a simulated phone declares it carries: the stock app's SMS and data, and MMS in the
# app's (unreleased) mmsMessage format
SIMULATOR_CHANNELS = ("sms", "data", "mms")


@dataclass
class PhoneStats:
    pulled: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    cancelled: int = 0
    received: int = 0


class SimulatedPhone:
    def __init__(
        self,
        client: DeviceClient,
        *,
        fail_rate: float = 0.0,
        delivery_delay: float = 0.5,
        send_delay: float = 0.05,
        inbound_rate: float = 0.0,
        order: str = "lifo",
        seed: int | None = None,
    ) -> None:
        self.client = client
        self.fail_rate = fail_rate
        self.delivery_delay = delivery_delay
        self.send_delay = send_delay
        self.inbound_rate = inbound_rate
        self.order = order
        self.stats = PhoneStats()
        self.connected = asyncio.Event()
        self._random = random.Random(seed)  # noqa: S311 (simulated traffic, not secrets)
        self._wake = asyncio.Event()
        self._handled: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # the files of each MMS it "sent", decoded from the app's mmsMessage format
        self.media: dict[str, list[tuple[str, bytes]]] = {}

    @property
    def handled(self) -> frozenset[str]:
        """Ids of the messages this phone took on (each sent once)."""
        return frozenset(self._handled)

    async def run(self) -> None:
        """Until cancelled: an SSE listener, a pull loop and (optionally) inbound traffic."""
        workers = [self._listen(), self._pull_loop()]
        if self.inbound_rate > 0:
            workers.append(self._inbound_loop())
        try:
            await asyncio.gather(*workers)
        finally:
            for task in self._tasks:
                task.cancel()

    async def _listen(self) -> None:
        attempt = 0
        while True:
            try:
                async for name, data in self.client.events():
                    attempt = 0
                    if name == "MessageEnqueued" or name == "MessageCancelled":
                        self._wake.set()
                    log.debug("event %s %s", name, data)
                    self.connected.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reconnect as the app does
                log.debug("event stream closed: %s", exc)
            self.connected.clear()
            await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
            attempt += 1

    async def _pull_loop(self) -> None:
        while True:
            try:
                await self.pull_once()
            except asyncio.CancelledError:
                raise
            except (MobileError, httpx.TransportError) as exc:
                log.warning("pull failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=15)
            self._wake.clear()

    async def pull_once(self) -> None:
        for message in await self.client.pull(self.order):
            self.stats.pulled += 1
            message_id = message["id"]
            if message.get("state") == "Cancelling":
                if message_id not in self._handled:
                    self._handled.add(message_id)
                    numbers = message["phoneNumbers"]
                    await self._report(
                        message_id,
                        "Cancelled",
                        [(n, "Cancelled", None) for n in numbers],
                        {"Cancelled": datetime.now(UTC)},
                    )
                    self.stats.cancelled += 1
                continue
            if message_id in self._handled:
                continue  # the app would re-send its current state; nothing new to say
            self._handled.add(message_id)
            task = asyncio.get_running_loop().create_task(self._send(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, message: dict[str, Any]) -> None:
        numbers: list[str] = message["phoneNumbers"]
        if "mmsMessage" in message:
            self.media[message["id"]] = [
                (part["contentType"], base64.b64decode(part["data"]))
                for part in message["mmsMessage"].get("attachments", [])
            ]
        history: dict[str, datetime] = {"Processed": datetime.now(UTC)}
        await self._report(
            message["id"], "Processed", [(n, "Processed", None) for n in numbers], history
        )
        await asyncio.sleep(self.send_delay)
        failed = {n for n in numbers if self._random.random() < self.fail_rate}
        history["Sent"] = datetime.now(UTC)
        if failed == set(numbers):
            history["Failed"] = history["Sent"]
            error = "Send result: RESULT_ERROR_GENERIC_FAILURE (Generic failure cause)"
            await self._report(
                message["id"], "Failed", [(n, "Failed", error) for n in numbers], history
            )
            self.stats.failed += len(numbers)
            return
        error = "Send result: RESULT_ERROR_GENERIC_FAILURE (Generic failure cause)"
        sent = [(n, "Failed", error) if n in failed else (n, "Sent", None) for n in numbers]
        await self._report(message["id"], "Sent", sent, history)
        self.stats.sent += len(numbers) - len(failed)
        self.stats.failed += len(failed)
        if not message.get("withDeliveryReport", True) or "mmsMessage" in message:
            return  # the app reports no delivery for an MMS
        await asyncio.sleep(self.delivery_delay)
        history["Delivered"] = datetime.now(UTC)
        delivered = [
            (n, "Failed", error) if n in failed else (n, "Delivered", None) for n in numbers
        ]
        state = "Delivered" if not failed else "Sent"
        await self._report(message["id"], state, delivered, history)
        self.stats.delivered += len(numbers) - len(failed)

    async def _report(
        self,
        message_id: str,
        state: str,
        recipients: Sequence[tuple[str, str, str | None]],
        history: dict[str, datetime],
    ) -> None:
        """Like the app, a report that does not get through is sent again later (reports are
        idempotent: states only move forward)."""
        for delay in (*REPORT_RETRY_DELAYS, None):
            try:
                await self.client.report(message_id, state, recipients, history)
                return
            except (MobileError, httpx.TransportError) as exc:
                if delay is None or (isinstance(exc, MobileError) and exc.status < 500):
                    raise
                log.debug("report of %s failed (%s); again in %ss", message_id, exc, delay)
                await asyncio.sleep(delay)

    async def _inbound_loop(self) -> None:
        while True:
            await asyncio.sleep(self._random.expovariate(self.inbound_rate))
            sender = "+52155" + "".join(self._random.choice("0123456789") for _ in range(8))
            await self.client.inbox(
                [
                    {
                        "phoneNumber": sender,
                        "message": "Hola, recibido",
                        "type": "sms",
                        "receivedAt": datetime.now(UTC).isoformat(),
                    }
                ]
            )
            self.stats.received += 1
