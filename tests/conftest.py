"""Test fixtures: the real app over HTTP on a real database (SQLite, or PostgreSQL when
SMSGATE_TEST_DATABASE_URL is set, in a fresh schema per run)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI

from smsgate.app import create_app
from smsgate.config import Settings
from smsgate.kit import clock
from smsgate.storage import migrate
from tests.factories import BASE_URL, METRICS_TOKEN, User, signup
from tests.serving import free_port, pg_schema
from tests.whatsapp import fake_graph
from tests.whatsapp.fake_graph import FakeGraph

TEST_DATABASE_URL = os.environ.get("SMSGATE_TEST_DATABASE_URL", "")
GRAPH_PORT = free_port()  # the fake WhatsApp Graph API (tests/whatsapp/fake_graph.py)


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    data_dir = tmp_path_factory.mktemp("data")
    schema = ""
    if TEST_DATABASE_URL:
        schema = f"test_{secrets.token_hex(6)}"
        pg_schema(TEST_DATABASE_URL, schema, create=True)
    base = Settings(
        data_dir=data_dir,
        database_url=TEST_DATABASE_URL,
        database_schema=schema,
        secret_key="test-secret-key-" + secrets.token_hex(16),
        public_url=BASE_URL,
        sse_keepalive_seconds=0.5,
        embedded_worker=False,
        webhooks_allow_private=True,  # the tests' receivers listen on 127.0.0.1
        default_plan="unlimited",  # billing tests choose their plans
        whatsapp_graph_url=f"http://127.0.0.1:{GRAPH_PORT}/v21.0",
        whatsapp_recipient_interval_seconds=0,  # pacing has its own tests
        metrics_token=METRICS_TOKEN,
        bad_credentials_per_minute=100_000,  # the suite's many wrong keys: tested on its own
    )
    resolved = base.resolved()
    migrate.upgrade(resolved)
    yield resolved
    if schema:
        pg_schema(TEST_DATABASE_URL, schema, create=False)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    yield application
    await application.state.webhook_http.aclose()
    await application.state.send_writer.close()
    await application.state.reports.close()
    await application.state.db.dispose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
async def make_user(app: FastAPI) -> AsyncIterator[Callable[..., Awaitable[User]]]:
    """Sign up fresh accounts (each with its own cookie jar); closes their clients after."""
    made: list[User] = []

    async def _make(**kwargs: Any) -> User:
        user = await signup(app, **kwargs)
        made.append(user)
        return user

    yield _make
    for user in made:
        await user.client.aclose()


@pytest.fixture(scope="session")
async def live_server(app: FastAPI) -> AsyncIterator[str]:
    """The same app served by a real uvicorn on loopback (for streams and real clients)."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    app.state.hub.close_all()
    server.should_exit = True
    await task


@pytest.fixture(scope="session")
async def graph() -> AsyncIterator[FakeGraph]:
    """The fake Graph API that every cloud line of the tests talks to."""
    async with fake_graph.serving(GRAPH_PORT) as fake:
        yield fake


class Inbox:
    """A real local SMTP server (aiosmtpd): the mail the app sends lands here."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def inbox(app, monkeypatch) -> Iterator[Inbox]:
    box = Inbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setattr(app.state.settings, "smtp_url", f"smtp://127.0.0.1:{port}")
    try:
        yield box
    finally:
        controller.stop()
