"""When the database cannot be reached, clients get 503 with Retry-After, never a 500."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from smsgate.app import create_app
from smsgate.config import Settings
from smsgate.kit.crypto import with_checksum
from tests.factories import BASE_URL, PASSWORD
from tests.serving import free_port

KEY = with_checksum("sk_", 32)  # well-formed, so it gets as far as the database


def _app_against(port: int, tmp_path) -> tuple[FastAPI, httpx.ASGITransport]:
    """The app with PostgreSQL expected at this loopback port."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test",
        secret_key="x" * 40,
    ).resolved()
    app = create_app(settings)
    return app, httpx.ASGITransport(app=app, raise_app_exceptions=False)


async def test_unreachable_database_answers_503(tmp_path) -> None:
    app, transport = _app_against(free_port(), tmp_path)  # nothing listens there
    try:
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            health = await client.get("/health")
            assert health.status_code == 503 and health.headers["Retry-After"]
            assert health.json()["database"]["reachable"] is False
            assert health.json()["database"]["error"] == "cannot connect (ConnectionRefusedError)"
            ready = await client.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["reason"] == "the database: cannot connect (ConnectionRefusedError)"
            assert (await client.get("/health/live")).status_code == 200
            for method, path, body in (
                ("POST", "/api/auth/login", {"email": "a@example.com", "password": PASSWORD}),
                ("POST", "/api/auth/signup", {"email": "a@example.com", "password": PASSWORD}),
                ("GET", "/api/v1/messages", None),
            ):
                headers = {"Authorization": f"Bearer {KEY}"} if body is None else {}
                resp = await client.request(method, path, json=body, headers=headers)
                assert resp.status_code == 503, (path, resp.text)
                assert resp.json()["code"] == "service_unavailable"
                assert resp.headers["Retry-After"] == "5"
    finally:
        await app.state.db.dispose()


async def _starting_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """What PostgreSQL answers while it starts or shuts down: an ErrorResponse with SQLSTATE
    57P03 to the startup packet (asking for TLS first is answered 'N', no)."""
    try:
        while True:
            length = int.from_bytes(await reader.readexactly(4), "big")
            packet = await reader.readexactly(length - 4)
            if packet[:4] == (80877103).to_bytes(4, "big"):  # SSLRequest
                writer.write(b"N")
                await writer.drain()
                continue
            fields = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0"
            writer.write(b"E" + (len(fields) + 4).to_bytes(4, "big") + fields)
            await writer.drain()
            break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def test_a_database_starting_up_is_503_on_every_surface(tmp_path) -> None:
    """SQLSTATE 57P03 reached the generic handler: 500 without Retry-After, which clients that
    retry only 503 give up on. Now 503 with Retry-After, in each API's own error shape."""
    server = await asyncio.start_server(_starting_up, "127.0.0.1", 0)
    app, transport = _app_against(server.sockets[0].getsockname()[1], tmp_path)
    try:
        async with server, httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            assert (await client.get("/health/ready")).status_code == 503
            ours = await client.get("/api/v1/messages", headers={"Authorization": f"Bearer {KEY}"})
            assert ours.status_code == 503, ours.text
            assert ours.json()["code"] == "service_unavailable"
            assert ours.headers["Retry-After"] == "5"
            basic = httpx.BasicAuth("a@example.com", PASSWORD)
            theirs = await client.get("/api/3rdparty/v1/devices", auth=basic)
            assert theirs.status_code == 503, theirs.text
            assert set(theirs.json()) == {"message"}  # the third-party API's own shape
            assert theirs.headers["Retry-After"] == "5"
            health = await client.get("/api/3rdparty/v1/health")
            assert health.status_code == 503 and health.json()["status"] == "fail"
    finally:
        await app.state.db.dispose()
