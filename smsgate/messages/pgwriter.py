"""The send writer's batch on PostgreSQL, straight through asyncpg.

Through SQLAlchemy a batch's rows cost more of the event loop than the rest of a send together
(each row's parameters processed column by column in Python, several statements per table).
Here each table takes one INSERT of `unnest`ed column arrays (one prepared statement whatever
the batch size, the arrays encoded by asyncpg's C code), and the batch is one transaction.
Values are stored exactly as SQLAlchemy would store them (JSON columns as JSON text, `null`
included), so the rest of the application reads these rows like any other.

The rare cases go back to the SQLAlchemy path (writer._write_sqlalchemy), as on SQLite: sends to
a number on the opt-out list (their events are written there), and sends whose externalId
turned out to be taken already (replays, whose originals are read there).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import asyncpg
from sqlalchemy import JSON, Boolean, DateTime, Integer, Table
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.types import TypeDecorator, TypeEngine

from smsgate.messages.models import history_table, messages_table, recipients_table


def _array_type(column_type: TypeEngine[Any]) -> str:
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    if isinstance(column_type, Boolean):
        return "bool"
    if isinstance(column_type, Integer):
        return "int4"
    if isinstance(column_type, DateTime):
        return "timestamptz"
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


MESSAGES = UnnestInsert(
    messages_table, " ON CONFLICT (account_id, external_id) DO NOTHING RETURNING id"
)
RECIPIENTS = UnnestInsert(recipients_table)
HISTORY = UnnestInsert(history_table)

_NAMED = re.compile(r":([a-z_]+)")


def positional(sql: str) -> tuple[str, list[str]]:
    """':name' placeholders (the SQL shared with SQLAlchemy) as asyncpg's $1, $2, ..."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _NAMED.sub(number, sql), names


def bind(names: list[str], values: Mapping[str, Any]) -> list[Any]:
    return [values[name] for name in names]


@contextmanager
def as_sqlalchemy_errors() -> Iterator[None]:
    """asyncpg's errors as SQLAlchemy's, so callers and the error handlers treat both paths
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
