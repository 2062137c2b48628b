"""Wake-ups cross processes on PostgreSQL: an event published by one server reaches the phone
streaming from another."""

from __future__ import annotations

import asyncio

import pytest

from smsgate.mobile.hub import MESSAGE_ENQUEUED, Event, Hub
from smsgate.mobile.pgnotify import PgBridge


async def test_events_travel_between_two_servers(settings) -> None:
    if settings.is_sqlite:
        pytest.skip("LISTEN/NOTIFY exists on PostgreSQL only; SQLite runs one process")
    first, second = Hub(), Hub()
    bridges = [PgBridge(first, settings), PgBridge(second, settings)]
    for bridge in bridges:
        bridge.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(b.ready.wait() for b in bridges)), 10)
        stream = second.subscribe("cdevice", "caccount")
        other_account = second.subscribe("cother", "cstranger")
        first.publish("caccount", None, Event(MESSAGE_ENQUEUED))
        first.publish("caccount", "cdevice", Event("MessageCancelled", {"messageId": "m1"}))
        got = [await asyncio.wait_for(stream.queue.get(), 5) for _ in range(2)]
        assert got == [Event(MESSAGE_ENQUEUED), Event("MessageCancelled", {"messageId": "m1"})]
        assert other_account.queue.empty()
        # a process does not receive its own notifications twice
        local = first.subscribe("cdevice", "caccount")
        first.publish("caccount", "cdevice", Event(MESSAGE_ENQUEUED))
        await asyncio.sleep(0.3)
        assert local.queue.qsize() == 1
    finally:
        for bridge in bridges:
            await bridge.stop()
