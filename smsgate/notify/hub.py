"""Wake-ups for connected phones: hints, never the truth (the phone polls on every connect).

Each open `GET /events` stream subscribes here. In one process, publishing puts the event on the
streams' queues; with several processes on PostgreSQL the same events travel through
LISTEN/NOTIFY (`smsgate.notify.pgnotify`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.storage.db import after_commit

QUEUE_SIZE = 8  # like the reference: a slow stream drops events, and polls cover the loss

MESSAGE_ENQUEUED = "MessageEnqueued"
MESSAGE_CANCELLED = "MessageCancelled"
SETTINGS_UPDATED = "SettingsUpdated"
WEBHOOKS_UPDATED = "WebhooksUpdated"
MESSAGES_EXPORT_REQUESTED = "MessagesExportRequested"
END_STREAM = ""  # not an SSE event: the stream that receives it ends (shutdown, device deleted)


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, str] | None = None

    def frame(self) -> bytes:
        payload = "null" if self.data is None else json.dumps(self.data, separators=(",", ":"))
        return f"event: {self.name}\ndata: {payload}\n\n".encode()


@dataclass(eq=False)
class Subscription:
    device_id: str
    account_id: str
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))


class Hub:
    def __init__(self) -> None:
        self._by_device: dict[str, set[Subscription]] = defaultdict(set)
        self._by_account: dict[str, set[str]] = defaultdict(set)
        # set by the cross-process bridge: forwards what this process publishes
        self.forward: Callable[[str, str | None, Event], None] | None = None

    def subscribe(self, device_id: str, account_id: str) -> Subscription:
        subscription = Subscription(device_id, account_id)
        self._by_device[device_id].add(subscription)
        self._by_account[account_id].add(device_id)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        streams = self._by_device.get(subscription.device_id)
        if streams is None:
            return
        streams.discard(subscription)
        if not streams:
            del self._by_device[subscription.device_id]
            devices = self._by_account.get(subscription.account_id)
            if devices is not None:
                devices.discard(subscription.device_id)
                if not devices:
                    del self._by_account[subscription.account_id]

    def connected(self) -> set[str]:
        return set(self._by_device)

    def is_connected(self, device_id: str) -> bool:
        return device_id in self._by_device

    def publish(self, account_id: str, device_id: str | None, event: Event) -> None:
        """To one device, or (device_id None) to every connected device of the account."""
        self.deliver_local(account_id, device_id, event)
        if self.forward is not None:
            self.forward(account_id, device_id, event)

    def deliver_local(self, account_id: str, device_id: str | None, event: Event) -> None:
        targets = [device_id] if device_id else list(self._by_account.get(account_id, ()))
        for target in targets:
            for subscription in self._by_device.get(target, ()):
                if subscription.account_id != account_id:
                    continue
                with contextlib.suppress(asyncio.QueueFull):
                    subscription.queue.put_nowait(event)

    def close_all(self) -> None:
        """Ask every stream to end (shutdown): phones reconnect, possibly elsewhere."""
        for streams in self._by_device.values():
            for subscription in streams:
                with contextlib.suppress(asyncio.QueueFull):
                    subscription.queue.put_nowait(Event(END_STREAM))


def wake_after_commit(
    session: AsyncSession, hub: Hub, account_id: str, device_id: str | None, event: Event
) -> None:
    """Publish `event` once the session's transaction has committed (never before: a phone
    woken early would read the old state), and not at all if it rolls back. The domains wake
    phones through this; no route publishes."""
    after_commit(session, partial(hub.publish, account_id, device_id, event))


def app_hub(request: Request) -> Hub:
    """The app's hub, for a route to hand to the domain functions that wake phones."""
    hub: Hub = request.app.state.hub
    return hub


AppHub = Annotated[Hub, Depends(app_hub)]
