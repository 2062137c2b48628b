"""The SQLite driver the engine uses (storage/onehop.py): what SQLAlchemy reads of a statement is
right, errors and transactions behave as with aiosqlite's own cursor, and a statement is one
trip to the driver's thread."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgate.config import Settings
from smsgate.storage import onehop
from smsgate.storage.db import make_engine

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String, unique=True, nullable=False),
    Column("size", Integer, nullable=False, default=0),
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(Settings(data_dir=tmp_path, database_url="").resolved())
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def test_the_engine_on_sqlite_uses_the_one_trip_driver(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.driver_connection, onehop.Connection)
        # the connect-time settings went through it (db.py's connect hook)
        mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
        keys = (await conn.execute(text("PRAGMA foreign_keys"))).scalar()
    assert (mode, keys) == ("wal", 1)


async def test_rows_rowcount_lastrowid_and_returning(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        made = await conn.execute(insert(things).values(name="a", size=1))
        assert made.rowcount == 1
        assert made.inserted_primary_key == (1,)  # from the cursor's lastrowid
        back = await conn.execute(
            insert(things).values(name="b", size=2).returning(things.c.id, things.c.name)
        )
        assert back.all() == [(2, "b")]
        many = await conn.execute(insert(things), [{"name": f"m{i}", "size": i} for i in range(5)])
        assert many.rowcount == 5  # executemany
        changed = await conn.execute(update(things).where(things.c.size < 2).values(size=9))
        assert changed.rowcount == 3  # a, m0, m1
        rows = (await conn.execute(select(things.c.name).order_by(things.c.id))).scalars()
        assert list(rows) == ["a", "b", "m0", "m1", "m2", "m3", "m4"]
        nothing = await conn.execute(select(things).where(things.c.name == "none"))
        assert nothing.first() is None
        # a result read a row at a time, then the rest
        result = await conn.execute(select(things.c.id).order_by(things.c.id))
        assert result.fetchone() == (1,)
        assert result.fetchmany(2) == [(2,), (3,)]
        assert len(result.fetchall()) == 4


async def test_a_streamed_result_reads_the_same_rows(engine: AsyncEngine) -> None:
    """`stream()` takes SQLAlchemy's server-side cursor, which asks the driver's cursor for
    rows a few at a time (fetchone, fetchmany): the same rows, in order, none twice."""
    async with engine.begin() as conn:
        await conn.execute(insert(things), [{"name": f"s{i:02d}", "size": i} for i in range(25)])
    async with engine.connect() as conn:
        streamed = await conn.stream(select(things.c.size).order_by(things.c.id))
        first = await streamed.fetchone()
        partitions = [list(part) async for part in streamed.partitions(10)]
    assert first == (0,)
    assert [len(part) for part in partitions] == [10, 10, 4]
    assert [row[0] for part in partitions for row in part] == list(range(1, 25))


async def test_errors_are_sqlalchemys_and_the_connection_goes_on(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(things).values(name="x"))
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(insert(things).values(name="y"))
            await conn.execute(insert(things).values(name="x"))  # unique name
    with pytest.raises(OperationalError, match="no such table"):
        async with engine.connect() as conn:
            await conn.execute(text("SELECT * FROM nowhere"))
    async with engine.connect() as conn:
        names = (await conn.execute(select(things.c.name))).scalars().all()
    assert names == ["x"]  # "y" was rolled back with its transaction


async def test_savepoints_roll_back_only_their_part(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(things).values(name="kept"))
        nested = await conn.begin_nested()
        await conn.execute(insert(things).values(name="dropped"))
        await nested.rollback()
        await conn.execute(insert(things).values(name="also kept"))
    async with engine.connect() as conn:
        names = (await conn.execute(select(things.c.name).order_by(things.c.id))).scalars()
        assert list(names) == ["kept", "also kept"]


async def test_a_statement_is_one_trip_to_the_driver_thread(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips: list[Any] = []
    original = onehop.Connection._execute

    async def counted(self: onehop.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(fn)
        return await original(self, fn, *args, **kwargs)

    async with engine.begin() as conn:
        await conn.execute(insert(things).values(name="t"))
        monkeypatch.setattr(onehop.Connection, "_execute", counted)
        rows = (await conn.execute(select(things.c.id, things.c.name))).all()
        assert rows == [(1, "t")]
        assert len(trips) == 1  # SQLAlchemy's own aiosqlite cursor makes four
        await conn.execute(update(things).values(size=3))
        assert len(trips) == 2
    assert len(trips) == 3  # COMMIT; the pool's reset ROLLBACK after it makes no trip
    trips.clear()
    async with engine.begin() as conn:  # BEGIN goes with the first statement
        assert (await conn.execute(select(things.c.size))).scalar() == 3
    assert len(trips) == 2
    trips.clear()
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await conn.execute(update(things).values(size=4))
            raise RuntimeError("the caller fails mid-transaction")
    assert len(trips) == 2  # the statement, then a real ROLLBACK
    async with engine.connect() as conn:
        assert (await conn.execute(select(things.c.size))).scalar() == 3


async def test_a_begin_that_cannot_lock_fails_its_first_statement(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """BEGIN IMMEDIATE goes in the first statement's trip: when another connection holds the
    write lock past busy_timeout, that statement fails, nothing of it is written, and the
    connection is fine once the lock is free."""
    async with engine.connect() as conn:
        await conn.execute(text("PRAGMA busy_timeout=50"))  # the pool's one connection
        await conn.commit()
    other = sqlite3.connect(tmp_path / "smsgate.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="locked"):
            async with engine.begin() as conn:
                await conn.execute(insert(things).values(name="blocked"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    async with engine.begin() as conn:
        await conn.execute(insert(things).values(name="after"))
    async with engine.connect() as conn:
        names = (await conn.execute(select(things.c.name))).scalars().all()
    assert names == ["after"]


async def test_a_transaction_without_statements_commits_and_rolls_back(
    engine: AsyncEngine,
) -> None:
    async with engine.begin():
        pass  # BEGIN never sent
    async with engine.connect() as conn:
        await conn.begin()
        await conn.rollback()
        # the next statement runs outside any transaction: no BEGIN left over to send
        await conn.execute(text("PRAGMA user_version=7"))
        assert (await conn.execute(text("PRAGMA user_version"))).scalar() == 7
