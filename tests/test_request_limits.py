"""What one request may make the server hold: its body (checked while it is read, declared or
not), its headers, and how long its body may take (SMSGATE_MAX_BODY_BYTES and friends)."""

from __future__ import annotations

import asyncio
import time

import httpx

from smsgate.app import create_app
from tests.factories import PASSWORD
from tests.serving import serving_asgi

MIB = 1024 * 1024


async def test_a_body_past_the_limit_is_413_declared_or_streamed(make_user) -> None:
    user = await make_user()
    big = b'{"phoneNumbers": ["+5215555555555"], "message": "' + b"a" * (2 * MIB) + b'"}'
    declared = await user.client.post(
        "/api/v1/send", content=big, headers={"Content-Type": "application/json", **user.auth}
    )
    assert declared.status_code == 413, declared.text
    assert declared.json()["code"] == "body_too_large"

    async def chunks():
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    streamed = await user.client.post(
        "/api/v1/send", content=chunks(), headers={"Content-Type": "application/json", **user.auth}
    )
    assert streamed.status_code == 413, streamed.text
    theirs = await user.client.post(
        "/api/3rdparty/v1/messages",
        content=chunks(),
        headers={"Content-Type": "application/json"},
        auth=httpx.BasicAuth(user.email, PASSWORD),
    )
    assert theirs.status_code == 413 and set(theirs.json()) == {"message"}
    assert (await user.client.get("/api/v1/messages", headers=user.auth)).json()["data"] == []
    # a phone's received MMS (attachments in base64) has room of its own: past the 1 MiB it
    # reaches the route, which checks its signature
    mms = await user.client.post(
        "/api/mobile/v1/ingest/cm0000000000000000000000",
        content=b"{" + b" " * (3 * MIB) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert mms.status_code == 404, mms.status_code


async def test_oversized_headers_are_431(make_user) -> None:
    user = await make_user()
    answer = await user.client.get(
        "/api/v1/messages", headers={**user.auth, "X-Padding": "p" * 200_000}
    )
    assert answer.status_code == 431 and answer.json()["code"] == "headers_too_large"


async def test_a_body_that_trickles_is_cut_off(settings) -> None:
    """Headers sent, then the body a byte at a time, slower than the body timeout: 408 and the
    connection closed, instead of a request held open for minutes."""
    app = create_app(settings.model_copy(update={"body_timeout_seconds": 0.5}))
    try:
        async with serving_asgi(app) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{"
            )
            await writer.drain()
            started = time.monotonic()
            answer = await asyncio.wait_for(reader.read(4096), 10)
            took = time.monotonic() - started
            writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"request_timeout" in answer
        assert took < 5
    finally:
        await app.state.webhook_http.aclose()
        await app.state.send_writer.close()
        await app.state.db.dispose()
