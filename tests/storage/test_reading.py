"""Reads that take no lock (Database.reading, ReadSession): on SQLite a transaction that only
reads begins DEFERRED, so the idle background polls, a busy credential's reload and a client
polling its messages never make the send writer (another connection, in a process of its own)
wait for the write lock. Nothing can be written through such a session."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import text, update

from smsgate.accounts.cache import credentials
from smsgate.accounts.models import Account
from smsgate.config import Settings
from smsgate.storage import migrate
from smsgate.storage.db import Database, WriteWhileReading
from smsgate.webhooks import delivery
from tests.conftest import TEST_DATABASE_URL
from tests.factories import SCRAPER, pair_phone, send

sqlite_only = pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="SQLite's write lock")


def _path(database: Database) -> str:
    path = database.engine.url.database
    assert path
    return path


@contextmanager
def _write_lock(path: str) -> Iterator[None]:
    """Another connection holds the write lock, as the send writer's process does mid-batch."""
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def _lock_is_free(path: str) -> bool:
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return False
    else:
        other.execute("ROLLBACK")
        return True
    finally:
        other.close()


@sqlite_only
async def test_a_reading_session_takes_no_lock_where_a_session_does(app: FastAPI) -> None:
    database: Database = app.state.db
    async with database.reading() as session:
        assert (await session.execute(text("SELECT count(*) FROM accounts"))).scalar() is not None
        assert _lock_is_free(_path(database))
    async with database.sessions() as session:
        await session.execute(text("SELECT count(*) FROM accounts"))
        assert not _lock_is_free(_path(database))  # a session's first statement takes it
    assert _lock_is_free(_path(database))


@sqlite_only
async def test_the_idle_webhook_poll_waits_for_no_lock(tmp_path: Path) -> None:
    """Four times a second the worker looks for deliveries due; finding none, it must not have
    queued for the write lock (it did: a claim's transaction, spanning event-loop turns)."""
    settings = Settings(data_dir=tmp_path, database_url="").resolved()
    await asyncio.to_thread(migrate.upgrade, settings)  # it runs its own event loop
    database = Database(settings)
    try:
        async with httpx.AsyncClient() as http:
            with _write_lock(_path(database)):
                polled = delivery.deliver_due(database, http, settings)
                assert await asyncio.wait_for(polled, timeout=10) == 0
    finally:
        await database.dispose()


@sqlite_only
async def test_reloading_a_credential_waits_for_no_lock(app: FastAPI, make_user) -> None:
    """The credential cache reloads a busy key every second; unless it has a lastUsedAt to
    record (once a minute), that reload only reads."""
    user = await make_user()
    assert (await user.client.get("/api/keys", headers=user.auth)).status_code == 200
    listed = (await user.client.get("/api/keys", headers=user.auth)).json()["data"]
    assert listed[0]["lastUsedAt"] is not None  # the first use was recorded (a write)
    credentials.forget_account(user.account_id)
    with _write_lock(_path(app.state.db)):
        refused = user.client.post("/api/v1/send", json={}, headers=user.auth)
        answer = await asyncio.wait_for(refused, timeout=10)
    # authenticated (a 401 otherwise), then refused for its body: no database work after the key
    assert answer.status_code == 400, answer.text


@sqlite_only
async def test_polling_messages_waits_for_no_lock(app: FastAPI, make_user) -> None:
    """What a client polls (its message's state, its list, by our API and the third-party one)
    only reads."""
    user = await make_user()
    sent = await send(user)
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["id"]
    with _write_lock(_path(app.state.db)):
        for url in (
            f"/api/v1/messages/{message_id}",
            "/api/v1/messages",
            f"/api/3rdparty/v1/messages/{message_id}",
            "/api/3rdparty/v1/messages",
        ):
            polled = user.client.get(url, headers=user.auth)
            answer = await asyncio.wait_for(polled, timeout=10)
            assert answer.status_code == 200, (url, answer.text)
            assert message_id in answer.text


async def test_a_reading_session_refuses_to_write(app: FastAPI, make_user) -> None:
    """Its work is never committed (and on SQLite it holds no lock to write with): a write is
    refused at once instead of being lost."""
    user = await make_user()
    database: Database = app.state.db
    async with database.reading() as session:
        change = update(Account).where(Account.id == user.account_id).values(name="changed")
        with pytest.raises(WriteWhileReading):
            await session.execute(change)
    async with database.reading() as session:
        account = await session.get(Account, user.account_id)
        assert account is not None and account.name != "changed"
        account.name = "changed"
        with pytest.raises(WriteWhileReading):
            await session.flush()


# GET routes that write, and why; every other GET route must answer while another connection
# holds SQLite's write lock (a new route that writes is named here, or the test fails on it)
WRITING_GETS = {
    "/api/mobile/v1/message": "a phone's pull claims the messages it is given",
    "/api/mobile/v1/messages": "the same pull",
    "/api/mobile/v1/events": "a phone's request records when it was last seen",
    "/api/mobile/v1/settings": "a phone's request records when it was last seen",
    "/api/mobile/v1/webhooks": "a phone's request records when it was last seen",
    "/api/mobile/v1/user/code": "issues a one-time login code",
}
NOT_OK = {  # answers other than 200 that still ran the route's reads
    "/": 303,  # to the dashboard
    "/api/devices/{device_id}/qr": 409,  # an Android phone, not a web WhatsApp line
    "/api/whatsapp/webhook/{device_id}": 404,  # not a cloud line
    "/api/v1/messages/{message_id}/attachments/{attachment_id}": 404,
    "/reset": 400,  # without a token the page says the link is no good
}


@sqlite_only
async def test_every_get_route_that_only_reads_waits_for_no_lock(app: FastAPI, make_user) -> None:
    """A dashboard left open, a monitoring scrape, a client listing its devices: none of them
    may hold up the send writer, which waits for SQLite's write lock behind any transaction
    that took it. Each GET route is called, as its owner, with the lock held elsewhere."""
    user = await make_user()
    phone = await pair_phone(user)
    await phone.inbox([{"phoneNumber": "+5215555555555", "message": "hola", "id": "in-1"}])
    sent = await send(user, deviceId=phone.device_id)
    assert sent.status_code == 202, sent.text
    hook = await user.client.post(
        "/api/webhooks",
        json={"url": "https://hooks.example.com/sms", "events": ["sms:received"]},
        headers=user.auth,
    )
    assert hook.status_code == 201, hook.text
    threads = (await user.client.get("/api/conversations", headers=user.auth)).json()["data"]
    # the thread is read once it has been opened: the page's refreshes then only read
    opened = await user.client.get(f"/dashboard/conversations/{threads[0]['id']}")
    assert opened.status_code == 200, opened.text
    made = {}
    for kind, body in (
        ("contact", {"phoneNumber": "+525512345678", "name": "Ana"}),
        ("template", {"name": "cita", "message": "Hola {nombre}"}),
        ("campaign", {"name": "c", "message": "hola", "recipients": [{"phoneNumber": "no"}]}),
    ):
        answer = await user.client.post(f"/api/{kind}s", json=body, headers=user.auth)
        assert answer.status_code == 201, answer.text
        made[f"{kind}_id"] = answer.json()["id"]
    ids = {
        **made,
        "message_id": sent.json()["id"],
        "attachment_id": "none",
        "device_id": phone.device_id,
        "webhook_id": hook.json()["id"],
        "conversation_id": threads[0]["id"],
    }
    paths = sorted(
        {
            route.path
            for route in app.routes
            if isinstance(route, APIRoute)
            and "GET" in route.methods
            and route.path not in WRITING_GETS
        }
    )
    assert "/api/billing" in paths and "/dashboard/devices" in paths  # the enumeration works
    called = []
    with _write_lock(_path(app.state.db)):
        for path in paths:
            url = path.format(**ids)
            headers = {} if path.startswith("/dashboard") else dict(user.auth)
            if path.startswith("/api/mobile/"):
                headers = {"Authorization": f"Bearer {phone.token}"}
            if path == "/metrics":
                headers = dict(SCRAPER)  # the operator's scraper
            polled = user.client.get(url, headers=headers)
            try:
                answer = await asyncio.wait_for(polled, timeout=10)
            except TimeoutError:
                pytest.fail(f"GET {path} waited for the write lock")
            assert answer.status_code == NOT_OK.get(path, 200), (path, answer.text[:300])
            called.append(path)
    assert len(called) > 60


@sqlite_only
async def test_an_open_thread_writes_only_when_something_arrived(app: FastAPI, make_user) -> None:
    """The conversation page refreshes its thread every few seconds and marks it read: with
    nothing new that is a read, and a message that arrives is still marked read."""
    user = await make_user()
    phone = await pair_phone(user)
    await phone.inbox([{"phoneNumber": "+5215555555555", "message": "hola", "id": "t-1"}])
    thread = (await user.client.get("/api/conversations", headers=user.auth)).json()["data"][0]
    assert thread["unreadCount"] == 1
    url = f"/dashboard/conversations/{thread['id']}/thread"
    assert (await user.client.get(url)).status_code == 200
    read = (await user.client.get(f"/api/conversations/{thread['id']}", headers=user.auth)).json()
    assert read["unreadCount"] == 0
    with _write_lock(_path(app.state.db)):
        refreshed = await asyncio.wait_for(user.client.get(url), timeout=10)
        assert refreshed.status_code == 200 and "hola" in refreshed.text
    await phone.inbox([{"phoneNumber": "+5215555555555", "message": "¿sigue?", "id": "t-2"}])
    unread = await user.client.get(f"/api/conversations/{thread['id']}", headers=user.auth)
    assert unread.json()["unreadCount"] == 1
    refreshed = await user.client.get(url)
    assert refreshed.status_code == 200 and "¿sigue?" in refreshed.text
    read = (await user.client.get(f"/api/conversations/{thread['id']}", headers=user.auth)).json()
    assert read["unreadCount"] == 0
