"""Wake-ups cross processes on PostgreSQL: an event published by one server reaches the phone
streaming from another; a server alone sends no NOTIFY at all."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from smsgate.notify.hub import MESSAGE_ENQUEUED, Event, Hub
from smsgate.notify.pgnotify import CHANNEL, PgBridge
from smsgate.storage.db import asyncpg_dsn


async def _until(condition: Callable[[], bool], seconds: float = 10) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), seconds)


async def test_events_travel_between_two_servers(settings) -> None:
    if settings.is_sqlite:
        pytest.skip("LISTEN/NOTIFY exists on PostgreSQL only; SQLite runs one process")
    first, second = Hub(), Hub()
    bridges = [PgBridge(first, settings), PgBridge(second, settings)]
    for bridge in bridges:
        bridge.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(b.ready.wait() for b in bridges)), 10)
        # each has said hello and heard the other's
        await _until(lambda: bridges[0].peers == {bridges[1].origin})
        await _until(lambda: bridges[1].peers == {bridges[0].origin})
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


async def test_a_server_alone_notifies_nothing_until_another_says_hello(settings) -> None:
    if settings.is_sqlite:
        pytest.skip("LISTEN/NOTIFY exists on PostgreSQL only; SQLite runs one process")
    heard: list[dict[str, Any]] = []
    spy = await asyncpg.connect(asyncpg_dsn(settings))  # listens, and is no server
    await spy.add_listener(CHANNEL, lambda *args: heard.append(json.loads(args[-1])))
    alone = PgBridge(Hub(), settings)
    alone.start()
    second: PgBridge | None = None
    try:
        await asyncio.wait_for(alone.ready.wait(), 10)
        await _until(lambda: any(note.get("hello") for note in heard))  # its hello
        for _ in range(20):
            alone.hub.publish("caccount", None, Event(MESSAGE_ENQUEUED))
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        assert [note for note in heard if not note.get("hello")] == []
        second = PgBridge(Hub(), settings)
        second.start()
        await _until(lambda: alone.peers == {second.origin})
        alone.hub.publish("caccount", None, Event(MESSAGE_ENQUEUED))
        await _until(lambda: any(note.get("name") == MESSAGE_ENQUEUED for note in heard))
        wakes = [note for note in heard if note.get("name")]
        assert wakes == [
            {
                "origin": alone.origin,
                "account": "caccount",
                "device": None,
                "name": MESSAGE_ENQUEUED,
                "data": None,
            }
        ]
    finally:
        await spy.close()
        await alone.stop()
        if second is not None:
            await second.stop()
