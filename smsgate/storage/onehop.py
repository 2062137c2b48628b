"""aiosqlite with one thread hop per statement instead of four.

SQLAlchemy's aiosqlite adapter makes each statement four trips to aiosqlite's thread (make a
cursor, execute, fetch, close), and every trip costs the event loop a wake-up and a resumption
of the whole request's coroutine stack: measured here, about 330 µs of event-loop CPU for a
`SELECT 1` whose SQLite work takes a few µs, and ~60 trips for one received SMS. This
connection is aiosqlite's own (same thread, same queue, same close and stop), but its cursor does
all of a statement's work in one trip: execute, read the description, fetch every row, note
rowcount and lastrowid, close. SQLAlchemy then reads the results from memory. A BEGIN waits
for the transaction's first statement and goes in its trip; the pool's ROLLBACK after a COMMIT
makes none.

Every row is fetched at once, as SQLAlchemy's adapter already does for every non-streaming
statement (the project streams none).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import aiosqlite

_Outcome = tuple[Any, list[Any], int, int | None]


def _run(connection: sqlite3.Connection, operation: str, parameters: Any) -> _Outcome:
    """In the worker thread: the whole statement, and everything SQLAlchemy reads of it."""
    cursor = connection.cursor()
    try:
        cursor.execute(operation, () if parameters is None else parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _run_many(
    connection: sqlite3.Connection, operation: str, parameters: Iterable[Any]
) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(operation, parameters)
        return cursor.description, [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class Cursor:
    """The part of aiosqlite's cursor SQLAlchemy uses, answered from one trip's results."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1
        self._rows: list[Any] = []

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def execute(self, operation: str, parameters: Any = None) -> Cursor:
        head = operation.lstrip()[:9].upper()
        if not parameters and head.startswith("BEGIN"):
            self._connection.begin_with_next(operation)
            self._keep((None, [], -1, None))
            return self
        if head == "SAVEPOINT":  # outside a transaction, SQLite begins one
            self._connection.may_be_open()
        self._keep(await self._connection.in_thread(_run, operation, parameters))
        return self

    async def executemany(self, operation: str, parameters: Iterable[Any]) -> Cursor:
        # the thread iterates the parameters: make sure it gets a list, not a lazy generator
        rows = list(parameters)
        self._keep(await self._connection.in_thread(_run_many, operation, rows))
        return self

    def _keep(self, outcome: _Outcome) -> None:
        self.description, self._rows, self.rowcount, self.lastrowid = outcome

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        count = self.arraysize if size is None else size
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def close(self) -> None:
        self._rows = []


class Connection(aiosqlite.Connection):
    """aiosqlite's connection, whose cursors make one trip to its thread per statement.

    A transaction's BEGIN travels with its first statement, in the same trip; and a COMMIT or
    ROLLBACK when no transaction can be open (the pool's reset after a commit) makes no trip.
    A transaction with one statement is then two trips instead of four (BEGIN, statement,
    COMMIT, the pool's ROLLBACK). If the BEGIN fails (the write lock not had within
    busy_timeout), its first statement fails with that error and is not run."""

    _begin: str | None = None  # a BEGIN waiting for the transaction's first statement
    _open = False  # a transaction may be open: a BEGIN or SAVEPOINT was sent, not yet ended

    def cursor(self) -> Cursor:  # type: ignore[override]
        return Cursor(self)

    def begin_with_next(self, begin: str) -> None:
        self._begin = begin

    def may_be_open(self) -> None:
        self._open = True

    async def in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(sqlite3 connection, *args)` in the connection's thread: one trip."""
        begin, self._begin = self._begin, None
        if begin is not None:
            self._open = True  # from now, even if this trip fails or is cancelled
        call = partial(_on_connection, self, begin, fn, args)
        return await self._execute(call)  # type: ignore[no-untyped-call]

    async def commit(self) -> None:
        self._begin = None  # a transaction that ends before its first statement never began
        if self._open:
            await super().commit()
            self._open = False

    async def rollback(self) -> None:
        self._begin = None
        if self._open:
            await super().rollback()
            self._open = False


def _on_connection(
    connection: Connection, begin: str | None, fn: Callable[..., Any], args: tuple[Any, ...]
) -> Any:
    # read in the thread: the connection object exists only once the thread has opened it
    sqlite = connection._conn
    if begin is not None:
        sqlite.execute(begin)
    return fn(sqlite, *args)


async def connect(database: str, **kwargs: Any) -> Connection:
    """Open `database` as aiosqlite.connect would (sqlite3.connect's arguments)."""
    connection = Connection(partial(sqlite3.connect, database, **kwargs), 64)
    connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
    await connection  # starts the thread and opens the database in it
    return connection
