"""A paired phone's event stream, listened to over real HTTP while a test acts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI

from smsgate.agents.phone import DeviceClient

Frame = tuple[str, Any]


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (real time) until `predicate()` holds; fail the test after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def listening(phone: DeviceClient, app: FastAPI) -> AsyncIterator[list[Frame]]:
    """The frames the phone receives, as they arrive, once the server holds its stream."""
    frames: list[Frame] = []

    async def listen() -> None:
        async for frame in phone.events():
            frames.append(frame)

    task = asyncio.get_running_loop().create_task(listen())
    try:
        await until(lambda: bool(app.state.hub.is_connected(phone.device_id)))
        yield frames
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
