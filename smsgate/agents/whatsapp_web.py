"""Web lines: a WhatsApp Web (multi-device) session driven by `smsgate whatsapp bridge`.

The bridge is a separate process that speaks the mobile protocol to the server exactly as a
phone does (pairing token -> device token, pull, state reports, SSE wake-ups), plus two small
extensions: `POST /api/mobile/v1/whatsapp/session` (pairing QR, connected, disconnected,
logged_out) and `POST /api/mobile/v1/whatsapp/statuses` (delivery receipts by provider id).
So it restarts and scales apart from the API.

The WhatsApp side is the `WebSession` interface. `NeonizeSession` implements it with the
`neonize` library (install `smsgate[whatsapp-web]`); `SimulatedSession` implements it without
WhatsApp, for the tests and for trying the flow (`--simulate`). WhatsApp itself cannot be reached
from our CI: docs/whatsapp.md says what was verified and what was not.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from smsgate.agents.phone import DeviceClient, MobileError
from smsgate.kit import clock
from smsgate.whatsapp import cloud
from smsgate.whatsapp.lines import Outcome, Outgoing, Pacer, serve_once

log = logging.getLogger("smsgate.whatsapp.bridge")

WEB_LINE_INTERVAL = 2.0  # seconds between two messages of a web line: personal numbers get banned
POLL_INTERVAL = 30.0
RECEIPT_WAIT = 0.1  # seconds, up to RECEIPT_WAITS times, for our report to overtake a receipt
RECEIPT_WAITS = 50


@dataclass(frozen=True)
class WebInbound:
    provider_id: str
    sender: str  # digits or E.164
    text: str | None
    at: datetime | None = None
    name: str | None = None  # the sender's WhatsApp profile name


class SessionEvents(Protocol):
    """What a WhatsApp Web session tells the bridge."""

    async def on_qr(self, code: str) -> None: ...

    async def on_connected(self, phone: str | None) -> None: ...

    async def on_message(self, message: WebInbound) -> None: ...

    async def on_receipt(self, provider_ids: list[str], state: str) -> None: ...

    async def on_disconnected(self) -> None: ...

    async def on_logged_out(self) -> None: ...


class WebSession(Protocol):
    """A WhatsApp Web session, as the bridge needs it."""

    async def run(self, events: SessionEvents) -> None:
        """Connect (showing QR codes until linked) and keep the session until stop()."""
        ...

    async def send(self, message: Outgoing) -> Outcome: ...

    async def stop(self) -> None: ...


# --- the bridge -----------------------------------------------------------------------------


class HttpLineQueue:
    """A line's queue over the mobile protocol (what the Android app calls)."""

    def __init__(self, client: DeviceClient) -> None:
        self.client = client
        self.reported: dict[str, None] = {}  # provider ids the server knows, oldest first

    async def pull(self) -> list[dict[str, Any]]:
        return await self.client.pull("fifo")

    async def acknowledge(self, message_id: str) -> None:
        await self.client.report_entries(message_id, [], state="Processed")

    async def report(self, message_id: str, entries: list[dict[str, Any]]) -> None:
        await self.client.report_entries(message_id, entries)
        for entry in entries:
            if entry.get("providerMessageId"):
                self.reported[str(entry["providerMessageId"])] = None
        while len(self.reported) > 10_000:
            del self.reported[next(iter(self.reported))]


class Bridge:
    """Runs one web line: the session's events go to the server, the server's queue to the
    session. Sends only while the session is connected."""

    def __init__(
        self,
        client: DeviceClient,
        session: WebSession,
        *,
        pacer: Pacer | None = None,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.client = client
        self.session = session
        self.pacer = pacer or Pacer(per_line=WEB_LINE_INTERVAL, expedite=False)
        self.poll_interval = poll_interval
        self.connected = asyncio.Event()
        self.dropped = asyncio.Event()  # set while the session is down: take nothing new
        self.wake = asyncio.Event()
        self.queue = HttpLineQueue(client)
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[None]] = set()

    async def _session_state(self, state: str, **extra: Any) -> None:
        await self.client.call("POST", "/whatsapp/session", {"state": state, **extra})

    # SessionEvents

    async def on_qr(self, code: str) -> None:
        log.info("scan the QR code shown in the dashboard (or GET /api/devices/{id}/qr)")
        await self._session_state("pairing", qr=code)

    async def on_connected(self, phone: str | None) -> None:
        await self._session_state("connected", **({"phoneNumber": phone} if phone else {}))
        self.dropped.clear()
        self.connected.set()
        self.wake.set()

    async def on_message(self, message: WebInbound) -> None:
        sender = message.sender if message.sender.startswith("+") else "+" + message.sender
        item: dict[str, Any] = {
            "type": "whatsapp",
            "id": message.provider_id,
            "phoneNumber": sender,
            "message": message.text,
        }
        if message.at is not None:
            item["receivedAt"] = clock.iso(message.at)
        if message.name:
            item["name"] = message.name
        await self.client.inbox([item])

    async def on_receipt(self, provider_ids: list[str], state: str) -> None:
        """A receipt can overtake our own report of the send: ids the server does not know yet
        are passed on again a little later."""
        known = [i for i in provider_ids if i in self.queue.reported]
        unknown = [i for i in provider_ids if i not in self.queue.reported]
        if known:
            await self._statuses(known, state)
        if unknown:
            task = asyncio.get_running_loop().create_task(self._later(unknown, state))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _statuses(self, provider_ids: list[str], state: str) -> None:
        items = [{"providerMessageId": i, "state": state} for i in provider_ids]
        await self.client.call("POST", "/whatsapp/statuses", items)

    async def _later(self, provider_ids: list[str], state: str) -> None:
        for _ in range(RECEIPT_WAITS):
            await asyncio.sleep(RECEIPT_WAIT)
            if all(i in self.queue.reported for i in provider_ids):
                break
        with contextlib.suppress(MobileError):
            await self._statuses(provider_ids, state)

    async def on_disconnected(self) -> None:
        self.connected.clear()
        self.dropped.set()
        await self._session_state("disconnected")

    async def on_logged_out(self) -> None:
        self.connected.clear()
        self.dropped.set()
        await self._session_state("logged_out")

    # loops

    async def _listen(self) -> None:
        """SSE wake-ups from the server; reconnects with a growing pause."""
        pause = 1.0
        while True:
            try:
                async for _name, _data in self.client.events():
                    pause = 1.0
                    self.wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server restarted or the network dropped
                log.warning("event stream closed (%s); reconnecting in %.0fs", exc, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 60.0)

    async def _serve(self) -> None:
        while True:
            await self.connected.wait()
            self.wake.clear()
            try:
                # a drop mid-batch: the message in hand is finished, the rest stays claimed
                # by this line, unacknowledged, and comes back with the next pull
                while self.connected.is_set() and await serve_once(
                    self.queue, self.session, self.pacer, self.dropped
                ):
                    pass
            except asyncio.CancelledError:
                raise
            except MobileError as exc:
                if exc.status == 401:
                    raise  # the line was deleted or re-paired: stop, do not spin
                log.warning("serving the queue failed: %s", exc)
            except Exception:
                log.exception("serving the queue failed")
            await clock.wait(self.wake, self.poll_interval)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.session.run(self), name="whatsapp-session"),
            loop.create_task(self._listen(), name="whatsapp-events"),
            loop.create_task(self._serve(), name="whatsapp-queue"),
        ]
        try:
            done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # re-raise what ended the bridge
        finally:
            await self.stop()

    async def stop(self) -> None:
        await self.session.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []


# --- a session without WhatsApp -------------------------------------------------------------


@dataclass
class SimulatedSession:
    """A stand-in for WhatsApp Web: shows a QR code, links when `scan()` is called (or after
    `auto_link` seconds), records what it sends and delivers it after `deliver_after` seconds.
    Tests drive it with scan(), incoming(), drop() and log_out()."""

    phone: str = "+5215500000000"
    auto_link: float | None = None
    deliver_after: float | None = 0.0
    sent: list[Outgoing] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # number -> error
    _events: SessionEvents | None = None
    _linked: asyncio.Event = field(default_factory=asyncio.Event)
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: Callable[[], int] = field(default_factory=lambda: itertools.count(1).__next__)

    async def run(self, events: SessionEvents) -> None:
        self._events = events
        while not self._stopped.is_set():
            self._linked.clear()
            await events.on_qr(f"2@SIMULATED{int(time.time() * 1000)},{self._ids()}")
            if self.auto_link is None:
                await self._linked.wait()
            elif not await clock.wait(self._linked, self.auto_link):
                self._linked.set()  # nobody scanned: it links by itself, as --simulate says
            if self._stopped.is_set():
                return
            await events.on_connected(self.phone)
            await self._stopped.wait()

    async def scan(self) -> None:
        self._linked.set()

    async def send(self, message: Outgoing) -> Outcome:
        if not self._linked.is_set():
            return Outcome(error="the WhatsApp session is not connected", retry_after=1.0)
        if message.template is not None:
            return Outcome(error="templates exist on the Cloud API only; send text or media")
        if message.to in self.refuse:
            return Outcome(error=self.refuse[message.to])
        self.sent.append(message)
        provider_id = f"3EB0SIM{self._ids():010d}"
        if self.deliver_after is not None and self._events is not None:
            events = self._events

            async def deliver() -> None:
                await asyncio.sleep(self.deliver_after or 0)
                await events.on_receipt([provider_id], "Delivered")

            asyncio.get_running_loop().create_task(deliver())
        return Outcome(provider_id=provider_id)

    async def incoming(self, sender: str, text: str, name: str | None = None) -> str:
        assert self._events is not None, "the session is not running"
        provider_id = f"3EB0IN{self._ids():010d}"
        await self._events.on_message(WebInbound(provider_id, sender, text, clock.now(), name))
        return provider_id

    async def drop(self) -> None:
        self._linked.clear()
        if self._events is not None:
            await self._events.on_disconnected()

    async def log_out(self) -> None:
        self._linked.clear()
        if self._events is not None:
            await self._events.on_logged_out()

    async def stop(self) -> None:
        self._stopped.set()
        self._linked.set()


# --- the real thing, through neonize --------------------------------------------------------


class NeonizeSession:
    """WhatsApp Web through `neonize` (a Python binding of whatsmeow). Its session keys live in
    `database` (an SQLite file); keep that file to stay linked across restarts."""

    def __init__(self, database: str) -> None:
        try:
            from neonize.aioze.client import NewAClient  # type: ignore[import-not-found]
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise RuntimeError(
                "the web bridge needs the neonize library: pip install 'smsgate[whatsapp-web]'"
            ) from exc
        self.client: Any = NewAClient(database)
        self._stopped = asyncio.Event()

    async def run(self, events: SessionEvents) -> None:  # pragma: no cover - needs WhatsApp
        from neonize.aioze import events as ev  # type: ignore[import-not-found]

        client = self.client

        async def on_qr(_: Any, data: bytes) -> None:
            await events.on_qr(data.decode())

        client.event.qr(on_qr)

        @client.event(ev.ConnectedEv)  # type: ignore[untyped-decorator]
        async def _connected(c: Any, _: Any) -> None:
            me = getattr(getattr(c, "me", None), "JID", None)
            await events.on_connected("+" + me.User if me is not None and me.User else None)

        @client.event(ev.DisconnectedEv)  # type: ignore[untyped-decorator]
        async def _disconnected(_: Any, __: Any) -> None:
            await events.on_disconnected()

        @client.event(ev.LoggedOutEv)  # type: ignore[untyped-decorator]
        async def _logged_out(_: Any, __: Any) -> None:
            await events.on_logged_out()

        @client.event(ev.MessageEv)  # type: ignore[untyped-decorator]
        async def _message(_: Any, message: Any) -> None:
            source = message.Info.MessageSource
            if source.IsFromMe or source.IsGroup:
                return
            body = message.Message
            text = (
                body.conversation
                or body.extendedTextMessage.text
                or body.imageMessage.caption
                or body.videoMessage.caption
                or body.documentMessage.caption
                or None
            )
            at = (
                datetime.fromtimestamp(message.Info.Timestamp, UTC)
                if message.Info.Timestamp
                else None
            )
            await events.on_message(
                WebInbound(
                    message.Info.ID, source.Sender.User, text, at, message.Info.Pushname or None
                )
            )

        @client.event(ev.ReceiptEv)  # type: ignore[untyped-decorator]
        async def _receipt(_: Any, receipt: Any) -> None:
            if receipt.Type in (1, 4, 6):  # DELIVERED, READ, PLAYED
                await events.on_receipt(list(receipt.MessageIDs), "Delivered")

        await client.connect()
        await self._stopped.wait()

    async def send(self, message: Outgoing) -> Outcome:  # pragma: no cover - needs WhatsApp
        if message.template is not None:
            return Outcome(error="templates exist on the Cloud API only; send text or media")
        to = message.to.lstrip("+")
        try:
            if not message.media_urls:
                response = await self.client.send_message(to, message.text or "")
                return Outcome(provider_id=str(response.ID))
            provider_id = None
            for index, url in enumerate(message.media_urls):
                caption = message.text if index == 0 else None
                kind = cloud.media_kind(url)
                if kind == "image":
                    built = await self.client.build_image_message(url, caption=caption)
                elif kind == "video":
                    built = await self.client.build_video_message(url, caption=caption)
                elif kind == "audio":
                    built = await self.client.build_audio_message(url)
                else:
                    name = url.rsplit("/", 1)[-1] or "file"
                    built = await self.client.build_document_message(
                        url, caption=caption, filename=name
                    )
                provider_id = str((await self.client.send_message(to, built)).ID)
            return Outcome(provider_id=provider_id)
        except Exception as exc:
            return Outcome(error=f"WhatsApp Web refused the message: {exc}"[:500])

    async def stop(self) -> None:  # pragma: no cover - needs WhatsApp
        self._stopped.set()
        with contextlib.suppress(Exception):
            await self.client.disconnect()
