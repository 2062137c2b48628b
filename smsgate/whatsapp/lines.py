"""What every WhatsApp line does with its queue, whoever drives it.

A line is a device of type `whatsapp`. It is served by one loop, the same for both providers:
pull what the dispatch engine hands it, acknowledge each message before sending (so it is never
handed to anything else again), send to each recipient through the provider, and report each
recipient's outcome with the provider's message id (which its status callbacks name later).

- A **cloud** line's loop runs inside the server's worker (`whatsapp.runner`), over the database.
- A **web** line's loop runs in `smsgate whatsapp bridge`, over the mobile protocol (HTTP).

Acknowledging first makes sending at most once: a loop that dies between the acknowledgement and
the report leaves its recipients `processing`, and `fail_stalled` fails them with
`outcome_unknown` after a while instead of sending them a second time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

EXPEDITED_PRIORITY = 100
RECIPIENT_INTERVAL = 6.0  # seconds between two messages to the same person on one line
MAX_ATTEMPTS = 4  # a temporary refusal (rate limit) is retried this many times in all
MAX_RETRY_WAIT = 30.0


@dataclass(frozen=True)
class Outgoing:
    """One message to one recipient, as a provider sends it."""

    message_id: str
    to: str  # E.164
    text: str | None
    media_urls: tuple[str, ...] = ()
    template: dict[str, Any] | None = None
    priority: int = 0


@dataclass(frozen=True)
class Outcome:
    """What became of one send: accepted (provider_id), refused (error) or try later."""

    provider_id: str | None = None
    error: str | None = None
    retry_after: float | None = None  # temporary refusal: nothing was sent, try again then


class Sender(Protocol):
    async def send(self, message: Outgoing) -> Outcome: ...


class LineQueue(Protocol):
    """How a loop reaches its line's queue: the database or the mobile API."""

    async def pull(self) -> list[dict[str, Any]]: ...

    async def acknowledge(self, message_id: str) -> None: ...

    async def report(self, message_id: str, entries: list[dict[str, Any]]) -> None: ...


@dataclass
class Pacer:
    """A conservative send rate that protects a number from being banned: at most one message
    per `per_recipient` seconds to the same person, and `per_line` seconds between any two
    messages of the line. Priority >= 100 skips the wait when `expedite` allows it."""

    per_recipient: float = RECIPIENT_INTERVAL
    per_line: float = 0.0
    expedite: bool = True
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _last_to: dict[str, float] = field(default_factory=dict)
    _last_any: float | None = None

    def wait_for(self, to: str, priority: int) -> float:
        if self.expedite and priority >= EXPEDITED_PRIORITY:
            return 0.0
        now = self.clock()
        waits = [0.0]
        last = self._last_to.get(to)
        if last is not None:
            waits.append(last + self.per_recipient - now)
        if self._last_any is not None:
            waits.append(self._last_any + self.per_line - now)
        return max(waits)

    async def wait(self, to: str, priority: int) -> None:
        delay = self.wait_for(to, priority)
        if delay > 0:
            await self.sleep(delay)

    def sent(self, to: str) -> None:
        now = self.clock()
        self._last_to[to] = now
        self._last_any = now
        if len(self._last_to) > 10_000:  # forget the oldest half; the interval is seconds long
            for key in sorted(self._last_to, key=self._last_to.__getitem__)[:5_000]:
                del self._last_to[key]


def outgoing(item: dict[str, Any], to: str) -> Outgoing:
    """The message of a pulled item (the app's wire shape plus `whatsappMessage`)."""
    whatsapp = item.get("whatsappMessage") or {}
    text = whatsapp.get("text")
    if text is None and isinstance(item.get("textMessage"), dict):
        text = item["textMessage"].get("text")
    return Outgoing(
        message_id=str(item["id"]),
        to=to,
        text=text,
        media_urls=tuple(whatsapp.get("mediaUrls") or ()),
        template=whatsapp.get("template"),
        priority=int(item.get("priority") or 0),
    )


async def send_with_retries(
    sender: Sender, message: Outgoing, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> Outcome:
    outcome = Outcome(error="not sent")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        outcome = await sender.send(message)
        if outcome.retry_after is None:
            return outcome
        if attempt < MAX_ATTEMPTS:
            await sleep(min(outcome.retry_after, MAX_RETRY_WAIT))
    return Outcome(error=outcome.error or "the provider kept refusing; try again later")


def entry(number: str, outcome: Outcome) -> dict[str, Any]:
    """One recipient of a state report (the app's shape, plus `providerMessageId`)."""
    if outcome.provider_id is not None and outcome.error is None:
        return {"phoneNumber": number, "state": "Sent", "providerMessageId": outcome.provider_id}
    out: dict[str, Any] = {"phoneNumber": number, "state": "Failed"}
    out["error"] = outcome.error or "not sent"
    if outcome.provider_id is not None:
        out["providerMessageId"] = outcome.provider_id
    return out


async def serve_once(
    queue: LineQueue, sender: Sender, pacer: Pacer, stopping: asyncio.Event | None = None
) -> int:
    """Pull once and work through it; returns how many messages were handled. When `stopping`
    is set, the message in hand is finished and the rest is left unacknowledged (it goes back
    to the queue)."""
    items = await queue.pull()
    for item in items:
        if stopping is not None and stopping.is_set():
            break
        numbers = [str(n) for n in item.get("phoneNumbers") or []]
        if item.get("state") == "Cancelling":
            # asked to cancel before we sent it: nothing went out
            await queue.report(
                str(item["id"]), [{"phoneNumber": n, "state": "Cancelled"} for n in numbers]
            )
            continue
        await queue.acknowledge(str(item["id"]))
        for number in numbers:
            message = outgoing(item, number)
            await pacer.wait(number, message.priority)
            outcome = await send_with_retries(sender, message, pacer.sleep)
            pacer.sent(number)
            await queue.report(message.message_id, [entry(number, outcome)])
    return len(items)
