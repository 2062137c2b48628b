"""A real local webhook receiver: records every request exactly as it arrived."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.serving import read_body, serving_asgi


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    answer_headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: asyncio.Event | None = None  # set: accept each request and answer only once it is set

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            return
        body = await read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append(Received(scope["path"], headers, body))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.hang is not None:
            await self.hang.wait()
        answer = [(k.encode(), v.encode()) for k, v in self.answer_headers.items()]
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", b"text/plain"), *answer],
            }
        )
        await send({"type": "http.response.body", "body": f"answer {self.status}".encode()})


@asynccontextmanager
async def receiving(path: str = "/hook", tls: Path | None = None) -> AsyncIterator[Receiver]:
    """A receiver on loopback; over HTTPS with `tls` (a folder from
    `tests.serving.loopback_certificate`)."""
    receiver = Receiver()
    async with serving_asgi(receiver, tls=tls) as port:
        receiver.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}{path}"
        yield receiver
