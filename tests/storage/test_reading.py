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
from sqlalchemy import text, update

from smsgate.accounts.cache import credentials
from smsgate.accounts.models import Account
from smsgate.config import Settings
from smsgate.storage import migrate
from smsgate.storage.db import Database, WriteWhileReading
from smsgate.webhooks import delivery
from tests.conftest import TEST_DATABASE_URL
from tests.factories import send

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
