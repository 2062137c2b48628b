"""When the database cannot be reached, clients get 503 with Retry-After, never a 500."""

from __future__ import annotations

import httpx

from smsgate.app import create_app
from smsgate.config import Settings
from smsgate.kit.crypto import with_checksum
from tests.factories import BASE_URL, PASSWORD
from tests.serving import free_port

KEY = with_checksum("sk_", 32)  # well-formed, so it gets as far as the database


async def test_unreachable_database_answers_503(tmp_path) -> None:
    port = free_port()  # nothing listens there
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test",
        secret_key="x" * 40,
    ).resolved()
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
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
