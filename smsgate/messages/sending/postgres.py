"""The batch store on PostgreSQL, straight through asyncpg.

Through SQLAlchemy a batch's rows cost more of the event loop than the rest of a send together
(each row's parameters processed column by column in Python). Here each table takes one INSERT
of `unnest`ed column arrays (one prepared statement whatever the batch size, the arrays encoded
by asyncpg's C code). Values are stored exactly as SQLAlchemy would store them (JSON columns as
JSON text, `null` included), so the rest of the application reads these rows like any other.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import JSON, Boolean, DateTime, Integer, LargeBinary, Table
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.types import TypeDecorator, TypeEngine

from smsgate.messages.models import messages_table
from smsgate.messages.sending.store import BatchStore, Row

T = TypeVar("T")
APPLICATION_NAME = "smsgate-send-writer"  # and the process id: pg_stat_activity tells them apart


def _array_type(column_type: TypeEngine[Any]) -> str:
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    if isinstance(column_type, Boolean):
        return "bool"
    if isinstance(column_type, Integer):
        return "int4"
    if isinstance(column_type, DateTime):
        return "timestamptz"
    if isinstance(column_type, LargeBinary):
        return "bytea"
    return "text"  # strings (the column's own type checks their length), and JSON as its text


class UnnestInsert:
    """INSERT INTO table (...) SELECT ... FROM unnest($1::type[], ...) for one table."""

    def __init__(self, table: Table, suffix: str = "") -> None:
        self.columns = [column.name for column in table.columns]
        casts: list[str] = []
        selected: list[str] = []
        self._encoders: list[Callable[[Any], Any] | None] = []
        for index, column in enumerate(table.columns, start=1):
            casts.append(f"${index}::{_array_type(column.type)}[]")
            is_json = isinstance(column.type, JSON)
            selected.append(f"c{index}::json" if is_json else f"c{index}")
            self._encoders.append(json.dumps if is_json else None)
        names = ", ".join(self.columns)
        aliases = ", ".join(f"c{i}" for i in range(1, len(self.columns) + 1))
        self.sql = (
            f"INSERT INTO {table.name} ({names}) SELECT {', '.join(selected)} "  # noqa: S608
            f"FROM unnest({', '.join(casts)}) AS t({aliases}){suffix}"
        )

    def arrays(self, rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
        """The rows as one list per column (every column must be given)."""
        out: list[list[Any]] = []
        for name, encode in zip(self.columns, self._encoders, strict=True):
            if encode is None:
                out.append([row[name] for row in rows])
            else:
                out.append([encode(row[name]) for row in rows])
        return out


@functools.cache
def _inserts(table: Table) -> UnnestInsert:
    return UnnestInsert(table)


_MESSAGES = UnnestInsert(
    messages_table, " ON CONFLICT (account_id, external_id) DO NOTHING RETURNING id"
)
_NAMED = re.compile(r":([a-z_]+)")


@functools.cache
def positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """':name' placeholders (the SQL shared with SQLite) as asyncpg's $1, $2, ..."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _NAMED.sub(number, sql), tuple(names)


class PostgresStore:
    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def insert(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        statement = _inserts(table)
        await self._connection.execute(statement.sql, *statement.arrays(rows))

    async def insert_messages(self, rows: Sequence[Mapping[str, Any]]) -> set[str]:
        inserted = await self._connection.fetch(_MESSAGES.sql, *_MESSAGES.arrays(rows))
        return {row[0] for row in inserted}

    async def rows(
        self,
        table: Table,
        where: Mapping[str, Collection[Any]],
        columns: Sequence[str] | None = None,
    ) -> list[Row]:
        names = list(columns or (column.name for column in table.columns))
        conditions = " AND ".join(
            f"{column} = ANY(${index}::{_array_type(table.c[column].type)}[])"
            for index, column in enumerate(where, start=1)
        )
        sql = f"SELECT {', '.join(names)} FROM {table.name} WHERE {conditions}"  # noqa: S608
        found = await self._connection.fetch(sql, *(list(values) for values in where.values()))
        json_columns = [name for name in names if isinstance(table.c[name].type, JSON)]
        rows = [dict(record) for record in found]
        for row in rows:
            for name in json_columns:
                if isinstance(row[name], str):
                    row[name] = json.loads(row[name])
        return rows

    async def run(self, sql: str, params: Mapping[str, Any]) -> int:
        text, names = positional(sql)
        status: str = await self._connection.execute(text, *(params[name] for name in names))
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def run_many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> None:
        text, names = positional(sql)
        await self._connection.executemany(text, [[p[name] for name in names] for p in params])

    async def value(self, sql: str, params: Mapping[str, Any]) -> Any:
        text, names = positional(sql)
        return await self._connection.fetchval(text, *(params[name] for name in names))


class PostgresDriver:
    """The writer process's PostgreSQL connection, kept between batches and opened again after
    any error (a restart, an idle timeout, pg_terminate_backend); each batch one transaction."""

    def __init__(self, dsn: str, schema: str) -> None:
        self._dsn = dsn
        self._schema = schema
        self._kept: Any = None

    async def transaction(self, work: Callable[[BatchStore], Awaitable[T]]) -> T:
        with as_sqlalchemy_errors():
            if self._kept is None or self._kept.is_closed():
                self._kept = await asyncpg.connect(
                    self._dsn,
                    server_settings={
                        "application_name": f"{APPLICATION_NAME} {os.getpid()}",
                        **({"search_path": self._schema} if self._schema else {}),
                    },
                )
            try:
                async with self._kept.transaction():
                    return await work(PostgresStore(self._kept))
            except BaseException:
                broken, self._kept = self._kept, None
                with contextlib.suppress(Exception):
                    await broken.close(timeout=5)
                raise

    async def close(self) -> None:
        if self._kept is not None:
            await self._kept.close()
            self._kept = None


@contextmanager
def as_sqlalchemy_errors() -> Iterator[None]:
    """asyncpg's errors as SQLAlchemy's, so callers and the error handlers treat both databases
    alike (a broken reference is an IntegrityError, a lost server a 503)."""
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(None, None, exc) from exc
    except (
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        OSError,  # refused, unreachable
        TimeoutError,
    ) as exc:
        raise OperationalError(None, None, exc) from exc
    except asyncpg.PostgresError as exc:
        raise DBAPIError(None, None, exc) from exc
