"""Health endpoints, and the server started as the README says."""

from __future__ import annotations

import shutil
import socket
import ssl
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from smsgate import __version__
from smsgate.app import create_app
from smsgate.ops import health
from tests.factories import PASSWORD, unique_email
from tests.serving import free_port, loopback_certificate, running_server, server_env


async def test_health_endpoints(client, settings) -> None:
    health = await client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["version"] == __version__
    assert body["database"]["reachable"] is True
    assert body["database"]["dialect"] == ("sqlite" if settings.is_sqlite else "postgresql")
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    assert (await client.get("/health/ready")).json() == {"status": "ok"}


async def test_a_database_too_busy_to_answer_is_not_called_unreachable(
    app, client, monkeypatch
) -> None:
    """A probe that gets no answer in time says so (busy, or not answering), rather than that
    the database cannot be reached: an operator looks for a long transaction, not a network."""
    monkeypatch.setattr(health, "PING_TIMEOUT_SECONDS", 0.3)
    # on SQLite, holding the pool's one connection is enough: the probe waits for it
    async with app.state.db.engine.connect() as held:
        if app.state.db.dialect == "postgresql":  # the probe's read waits for the lock
            await held.execute(text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"))
        answered = await client.get("/health")
        ready = await client.get("/health/ready")
    assert answered.status_code == 503 and answered.headers["Retry-After"] == "5"
    database = answered.json()["database"]
    assert database["reachable"] is False
    assert database["error"] == "no answer within 0.3 s: busy, or not answering"
    assert ready.status_code == 503
    assert ready.json()["reason"] == "the database: no answer within 0.3 s: busy, or not answering"
    assert (await client.get("/health")).json()["database"]["reachable"] is True


def _two_requests_apart(port: int, idle: float) -> tuple[int, int]:
    """Two GET /health/live on one raw keep-alive connection, `idle` seconds apart."""
    request = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    statuses = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for index in range(2):
            if index:
                time.sleep(idle)
            sock.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
                chunk = sock.recv(4096)
                assert chunk, "the server closed the idle connection"
                answer += chunk
            statuses.append(int(answer.split(b" ", 2)[1]))
    return statuses[0], statuses[1]


async def test_the_send_writer_runs_before_the_server_takes_requests(settings) -> None:
    """The writer's process used to start on the first send: /health/ready said 200 1.5-3 s
    before a send could complete. Now it is running once start-up is over."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert app.state.send_writer.pid is not None


def test_smsgate_serve_answers_health_and_a_send(settings, tmp_path, repo_root) -> None:
    """`smsgate serve` migrates, starts, and carries the newcomer path over real HTTP."""
    port = free_port()
    smsgate = Path(sys.executable).parent / "smsgate"
    with (
        running_server(
            [str(smsgate), "serve"], server_env(settings, tmp_path, port), repo_root, port
        ) as base,
        httpx.Client(base_url=base, timeout=10) as http,
    ):
        signup = http.post("/api/auth/signup", json={"email": unique_email(), "password": PASSWORD})
        assert signup.status_code == 201
        key = http.post(
            "/api/keys",
            json={"name": "k"},
            headers={"X-CSRF-Token": signup.json()["csrfToken"]},
        ).json()["key"]
        sent = http.post(
            "/api/v1/send",
            json={"phoneNumbers": ["+5215555555555"], "message": "Hola mundo"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert sent.status_code == 202
        assert http.get("/health").json()["database"]["revision"] is not None
        # an idle connection outlives the 5 s after which clients (httpx, Node) drop their own:
        # were the server to close first, a request sent at that moment would meet the close
        assert _two_requests_apart(port, 6.0) == (200, 200)
    if settings.is_sqlite:
        assert (tmp_path / "smsgate.db").exists() and (tmp_path / "secret_key").exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_starts_the_server_on_sqlite(tmp_path, repo_root) -> None:
    port = free_port()
    env = {"SMSGATE_DATA_DIR": str(tmp_path), "SMSGATE_PORT": str(port)}
    with running_server(["make", "run"], env, repo_root, port) as base:
        health = httpx.get(f"{base}/health").json()
        assert health["database"]["dialect"] == "sqlite"
    assert (tmp_path / "smsgate.db").exists()


def test_smsgate_serve_with_a_certificate_speaks_https(settings, tmp_path, repo_root) -> None:
    """The Android app requires HTTPS: `smsgate serve --ssl-certfile ... --ssl-keyfile ...`."""
    tls = loopback_certificate(tmp_path)
    cert, key = tls / "cert.pem", tls / "key.pem"
    port = free_port()
    smsgate = Path(sys.executable).parent / "smsgate"
    command = [str(smsgate), "serve", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    env = server_env(settings, tmp_path, port)
    trust = ssl.create_default_context(cafile=str(cert))
    with running_server(command, env, repo_root, port, scheme="https", verify=trust) as base:
        assert base.startswith("https://")
        health = httpx.get(f"{base}/health", verify=trust)
        assert health.status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
