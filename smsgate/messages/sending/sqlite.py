"""The batch store on SQLite: a plain sqlite3 connection (storage/rawsqlite.py).

Through aiosqlite and SQLAlchemy a batch's transaction cost about a hundred times more event-loop
time than its SQLite work. Here every call is synchronous on the writer process's own connection
(its coroutines never wait), values are converted as SQLAlchemy's SQLite dialect would, and
rows read back decode the same way.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite

from smsgate.messages.models import messages_table
from smsgate.messages.sending.store import BatchStore, Row
from smsgate.storage.rawsqlite import RawSqlite, TableCodec

T = TypeVar("T")
CHUNK = 5000  # values in one IN (...): SQLite allows 32,766 variables a statement


class _Codecs:
    def __init__(self) -> None:
        self._dialect = SQLiteDialect_aiosqlite()
        self._by_table: dict[str, TableCodec] = {}
        messages = self.of(messages_table)
        self.insert_keyed = (
            messages.insert_sql + " ON CONFLICT (account_id, external_id) DO NOTHING"
        )

    def of(self, table: Table) -> TableCodec:
        codec = self._by_table.get(table.name)
        if codec is None:
            codec = self._by_table[table.name] = TableCodec(table, self._dialect)
        return codec


class SqliteStore:
    def __init__(self, connection: sqlite3.Connection, codecs: _Codecs) -> None:
        self._connection = connection
        self._codecs = codecs

    async def insert(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        codec = self._codecs.of(table)
        self._connection.executemany(codec.insert_sql, [codec.params(row) for row in rows])

    async def insert_messages(self, rows: Sequence[Mapping[str, Any]]) -> set[str]:
        codec = self._codecs.of(messages_table)
        plain = [row for row in rows if row["external_id"] is None]
        self._connection.executemany(codec.insert_sql, [codec.params(row) for row in plain])
        created = {row["id"] for row in plain}
        for row in rows:  # one at a time: executemany tells no row's fate
            if row["external_id"] is not None:
                inserted = self._connection.execute(self._codecs.insert_keyed, codec.params(row))
                if inserted.rowcount == 1:
                    created.add(row["id"])
        return created

    async def rows(
        self,
        table: Table,
        where: Mapping[str, Collection[Any]],
        columns: Sequence[str] | None = None,
    ) -> list[Row]:
        codec = self._codecs.of(table)
        names = list(columns or codec.columns)
        chunked = [
            [list(values)[start : start + CHUNK] for start in range(0, len(values), CHUNK)]
            for values in where.values()
        ]
        found: list[Row] = []
        for chunks in itertools.product(*chunked):
            conditions = " AND ".join(
                f"{column} IN ({','.join('?' * len(values))})"
                for column, values in zip(where, chunks, strict=True)
            )
            sql = f"SELECT {', '.join(names)} FROM {table.name} WHERE {conditions}"  # noqa: S608
            for values in self._connection.execute(sql, [v for c in chunks for v in c]):
                found.append(codec.decode(values, names))
        return found

    async def run(self, sql: str, params: Mapping[str, Any]) -> int:
        return self._connection.execute(sql, params).rowcount

    async def run_many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> None:
        self._connection.executemany(sql, params)

    async def value(self, sql: str, params: Mapping[str, Any]) -> Any:
        row = self._connection.execute(sql, params).fetchone()
        return row[0] if row is not None else None


class SqliteDriver:
    """The writer process's SQLite connection: each batch in one BEGIN IMMEDIATE transaction."""

    def __init__(self, path: str) -> None:
        self._sqlite = RawSqlite(path)
        self._codecs = _Codecs()

    async def transaction(self, work: Callable[[BatchStore], Awaitable[T]]) -> T:
        codecs = self._codecs
        return await self._sqlite.transaction(lambda conn: work(SqliteStore(conn, codecs)))

    async def close(self) -> None:
        self._sqlite.close()
