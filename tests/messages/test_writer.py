"""The group-commit writer: one transaction for many sends, and one bad send fails alone."""

from __future__ import annotations

import asyncio
import os
import pickle
import re
import signal
from functools import partial

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError, OperationalError

from smsgate.accounts.service import Principal
from smsgate.messages.models import history_table, messages_table
from smsgate.messages.schemas import SendRequest
from smsgate.messages.sending import batch as batches
from smsgate.messages.sending import process
from smsgate.messages.sending.postgres import PostgresDriver
from smsgate.messages.sending.prepare import prepare_message
from smsgate.messages.sending.process import WriterProcess
from smsgate.messages.sending.sqlite import SqliteDriver
from smsgate.messages.sending.writer import WRITER_APPLICATION_NAME, SendWriter, process_config
from tests.factories import add_device
from tests.serving import free_port


def _request(**fields) -> SendRequest:
    body = {"phoneNumbers": ["+5215555555555"], "message": "Hola", **fields}
    return SendRequest.model_validate(body)


async def test_a_send_with_a_vanished_device_fails_alone(app, make_user) -> None:
    user = await make_user()
    principal = Principal(user.account_id, frozenset(), "key", "k", "MX")
    writer = SendWriter(app.state.db)
    try:
        good = [prepare_message(principal.account_id, "MX", _request()) for _ in range(5)]
        bad = prepare_message(
            principal.account_id, "MX", _request(deviceId="cgonegonegonegonegonegone")
        )
        results = await asyncio.gather(
            *(writer.store(p) for p in [*good[:2], bad, *good[2:]]), return_exceptions=True
        )
    finally:
        await writer.close()
    assert isinstance(results[2], IntegrityError)
    stored = [r for i, r in enumerate(results) if i != 2]
    assert all(not isinstance(r, BaseException) and r.created for r in stored)
    listed = (await user.client.get("/api/v1/messages", headers=user.auth)).json()["data"]
    assert {m["id"] for m in listed} == {p.message["id"] for p in good}


async def test_concurrent_sends_share_commits(app, make_user) -> None:
    """200 concurrent sends through one writer all land, each exactly once."""
    user = await make_user()
    writer = SendWriter(app.state.db)
    try:
        prepared = [
            prepare_message(user.account_id, "MX", _request(message=f"m{i}")) for i in range(200)
        ]
        results = await asyncio.gather(*(writer.store(p) for p in prepared))
    finally:
        await writer.close()
    assert all(r.created for r in results)
    seen: list[str] = []
    cursor = None
    while True:
        url = "/api/v1/messages?limit=100" + (f"&cursor={cursor}" if cursor else "")
        page = (await user.client.get(url, headers=user.auth)).json()
        seen += [m["id"] for m in page["data"]]
        if not (cursor := page["nextCursor"]):
            break
    assert sorted(seen) == sorted(p.message["id"] for p in prepared)


@pytest.mark.parametrize("copies", [2, 7])
async def test_duplicates_inside_one_batch_make_one_message(app, make_user, copies) -> None:
    user = await make_user()
    writer = SendWriter(app.state.db)
    try:
        prepared = [
            prepare_message(user.account_id, "MX", _request(externalId="same"))
            for _ in range(copies)
        ]
        results = await asyncio.gather(*(writer.store(p) for p in prepared))
    finally:
        await writer.close()
    assert sum(r.created for r in results) == 1
    assert len({r.row["id"] for r in results}) == 1


async def test_the_writer_stores_what_sqlalchemy_stores(app, make_user) -> None:
    """The send writer's driver (raw sqlite3 / asyncpg) leaves the column text SQLAlchemy
    would: a send through the writer against rows written through the ORM (the inbound SMS
    of a phone, and the opt-out's own history)."""
    user = await make_user()
    through_writer, through_orm = (
        prepare_message(user.account_id, "MX", _request(ttl=3600)) for _ in range(2)
    )
    writer = SendWriter(app.state.db)
    try:
        assert (await writer.store(through_writer)).created
    finally:
        await writer.close()
    async with app.state.db.engine.begin() as conn:
        await conn.execute(insert(messages_table), through_orm.message)
        await conn.execute(insert(history_table), through_orm.history)
    ids = {"writer": through_writer.message["id"], "orm": through_orm.message["id"]}
    columns = ", ".join(
        f"CAST({name} AS TEXT)"
        for name in ("media_urls", "template", "valid_until", "created_at", "is_encrypted")
    )
    async with app.state.db.engine.connect() as conn:
        select_row = text(f"SELECT {columns} FROM messages WHERE id = :id")  # noqa: S608
        fast, slow = [
            tuple((await conn.execute(select_row, {"id": i})).one())
            for i in (ids["writer"], ids["orm"])
        ]
        details = (
            await conn.execute(
                text(
                    "SELECT DISTINCT CAST(details AS TEXT) FROM message_state_changes "
                    "WHERE message_id IN (:a, :b)"
                ),
                {"a": ids["writer"], "b": ids["orm"]},
            )
        ).all()
    assert fast[:2] == slow[:2] == ("null", "null")  # JSON null, as SQLAlchemy stores None
    assert fast[4] == slow[4]
    # timestamps in the same text form (different instants; PostgreSQL trims fractions' zeros)
    assert [_shape(v) for v in fast[2:4]] == [_shape(v) for v in slow[2:4]]
    assert len(details) == 1  # the history's JSON column alike in both


def _shape(value: str) -> str:
    return re.sub(r"\d", "0", re.sub(r"\.\d+", "", value))


async def test_postgresql_writer_reconnects_when_its_connection_dies(app, make_user) -> None:
    """The writer process keeps one connection on PostgreSQL; a server that drops it (a restart,
    an idle timeout, pg_terminate_backend) costs a retry, never a send."""
    if app.state.db.dialect != "postgresql":
        pytest.skip("the SQLite writer owns a local file connection")
    user = await make_user()
    writer = SendWriter(app.state.db)
    try:
        first = await writer.store(prepare_message(user.account_id, "MX", _request()))
        name = f"{WRITER_APPLICATION_NAME} {writer._process.pid}"
        async with app.state.db.engine.connect() as conn:
            killed = await conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": name},
            )
            assert killed.scalar() == 1
        second = await writer.store(prepare_message(user.account_id, "MX", _request()))
    finally:
        await writer.close()
    assert first.created and second.created
    listed = (await user.client.get("/api/v1/messages", headers=user.auth)).json()["data"]
    assert {m["id"] for m in listed} == {first.row["id"], second.row["id"]}


async def test_a_killed_writer_process_loses_no_send(app, make_user) -> None:
    """The writer process killed between batches: the next batch starts a new one, and no
    send is lost or doubled. (A death with a batch in hand is the test after this one.)"""
    user = await make_user()
    writer = SendWriter(app.state.db)
    try:
        first = await writer.store(prepare_message(user.account_id, "MX", _request()))
        pid = writer._process.pid
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        second = await writer.store(prepare_message(user.account_id, "MX", _request()))
        third = await writer.store(prepare_message(user.account_id, "MX", _request()))
        assert writer._process.pid not in (None, pid)
    finally:
        await writer.close()
    stored = [first, second, third]
    assert all(s.created for s in stored)
    listed = (await user.client.get("/api/v1/messages", headers=user.auth)).json()["data"]
    assert sorted(m["id"] for m in listed) == sorted(s.row["id"] for s in stored)


def _die_with_the_first_batch(connection, config) -> None:
    """A writer process that takes its first batch, commits it (or not) and dies before
    answering; the process started after it is the real one."""
    marker, commits, real = config
    if os.path.exists(marker):
        process.serve(connection, real)
        return
    open(marker, "w").close()
    batch, resubmitted = pickle.loads(connection.recv_bytes())  # noqa: S301 (our own parent)
    if commits:
        kind, where, _ = real
        driver = SqliteDriver(*where) if kind == "sqlite" else PostgresDriver(*where)
        work = partial(batches.write, batch=batch, resubmitted=resubmitted)
        asyncio.run(driver.transaction(work))
    os._exit(1)


@pytest.mark.parametrize("commits", [True, False])
async def test_a_batch_in_hand_of_a_writer_that_died_is_stored_and_answered_once(
    app, make_user, tmp_path, commits
) -> None:
    """The worst moments: the batch committed and the answer never came, or it never
    committed. The batch goes to a new writer process, marked resubmitted: each send is stored
    once and answered as stored (a recipient on the opt-out list failed, as written)."""
    user = await make_user()
    added = await user.client.post(
        "/api/opt-outs", json={"phoneNumber": "+5215555555556"}, headers=user.auth
    )
    assert added.status_code == 201
    writer = SendWriter(app.state.db)
    config = (str(tmp_path / "died"), commits, process_config(app.state.db))
    writer._process = WriterProcess(_die_with_the_first_batch, config)
    sends = [
        prepare_message(user.account_id, "MX", _request()),
        prepare_message(user.account_id, "MX", _request(phoneNumbers=["+5215555555556"])),
    ]
    try:
        stored = await asyncio.gather(*(writer.store(p) for p in sends))
    finally:
        await writer.close()
    assert [s.created for s in stored] == [True, True]
    assert [s.row["id"] for s in stored] == [p.message["id"] for p in sends]
    assert [s.recipients[0]["state"] for s in stored] == ["processing", "failed"]
    assert stored[1].recipients[0]["error"] == "opted_out"
    listed = (await user.client.get("/api/v1/messages", headers=user.auth)).json()["data"]
    assert sorted(m["id"] for m in listed) == sorted(p.message["id"] for p in sends)
    states = {m["id"]: m["recipients"][0]["state"] for m in listed}
    assert states[sends[1].message["id"]] == "failed"


async def test_an_unreachable_postgresql_is_a_503_kind_of_error(app, make_user) -> None:
    """The writer process's failures to connect surface as OperationalError, which the API
    answers with 503 and Retry-After (not a 500)."""
    user = await make_user()
    writer = SendWriter(app.state.db)
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    config = ("postgresql", (nowhere, ""), app.state.db.settings)
    writer._process = WriterProcess(process.serve, config)
    try:
        with pytest.raises(OperationalError):
            await writer.store(prepare_message(user.account_id, "MX", _request()))
    finally:
        await writer.close()


async def test_pinned_sends_are_in_their_threads_when_answered(app, make_user, tmp_path) -> None:
    """The writer process joins the pinned sends it wrote to their threads, after their batch
    commits and before it answers. Where it cannot (here its join's database is gone), the API
    process joins them instead: either way every recipient is in its thread when answered."""
    user = await make_user()
    device_id = await add_device(app, user.account_id)
    settings = app.state.db.settings
    gone = settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{tmp_path}/no/db"})
    for writer_joins in (True, False):
        writer = SendWriter(app.state.db)
        if not writer_joins:
            kind, where, _ = process_config(app.state.db)
            writer._process = WriterProcess(process.serve, (kind, where, gone))
        try:
            sends = [
                prepare_message(
                    user.account_id,
                    "MX",
                    _request(deviceId=device_id, phoneNumbers=[f"+52155{writer_joins:d}555000{i}"]),
                )
                for i in range(3)
            ]
            stored = await asyncio.gather(*(writer.store(p) for p in sends))
        finally:
            await writer.close()
        assert [s.created for s in stored] == [True] * 3
        assert [s.joined for s in stored] == [writer_joins] * 3
        async with app.state.db.engine.connect() as conn:
            threads = (
                await conn.execute(
                    text(
                        "SELECT r.phone_number, c.contact FROM message_recipients r "
                        "JOIN conversations c ON c.id = r.conversation_id "
                        "WHERE r.message_id IN (:a, :b, :c)"
                    ),
                    dict(zip("abc", (p.message["id"] for p in sends), strict=True)),
                )
            ).all()
        assert sorted(threads) == sorted((p.recipients[0]["phone_number"],) * 2 for p in sends)
