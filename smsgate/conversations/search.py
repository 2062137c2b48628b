"""Finding threads by part of their contact's number or name, from an index (#32).

The text searched is the thread's contact (its number as first written) and its name, in lower
case. A query of three characters or more is looked up in trigrams of that text (migration
0019): on SQLite an FTS5 table kept by triggers, whose candidates are then checked with the
same LIKE as a shorter query; on PostgreSQL a pg_trgm GIN index on the very expression the LIKE
reads. Shorter queries (one or two characters match most threads anyway) read the account's
threads by last activity until a page is full.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal_column, select, table
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import NullType

from smsgate.conversations.models import Conversation

SQLITE_TABLE = "conversations_search"  # migration 0019
PG_INDEX = "ix_conversations_search"
INDEXED_FROM = 3  # trigrams: a shorter query has none


def _text() -> ColumnElement[Any]:
    """lower(contact || ' ' || coalesce(display_name, '')): written with literals, as the
    PostgreSQL index is (a bound parameter would not match its expression)."""
    c = Conversation.__table__.c
    joined = c.contact.op("||")(literal_column("' '")).op("||")(
        func.coalesce(c.display_name, literal_column("''"))
    )
    return func.lower(joined)


def _escaped(query: str) -> str:
    return query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Matching(ColumnElement[bool]):
    inherit_cache = True
    type = NullType()  # type: ignore[assignment]  # as written: see storage.base.Selective

    def __init__(self, query: str) -> None:
        self.words = query
        self.pattern = _text().like(f"%{_escaped(query.lower())}%", escape="\\")


@compiles(_Matching)
def _matching(element: _Matching, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.pattern, **kw)


@compiles(_Matching, "sqlite")
def _matching_sqlite(element: _Matching, compiler: SQLCompiler, **kw: Any) -> str:
    if len(element.words) < INDEXED_FROM:
        return compiler.process(element.pattern, **kw)
    phrase = '"' + element.words.replace('"', '""') + '"'
    fts = table(SQLITE_TABLE)
    candidates: Select[Any] = (
        select(literal_column("rowid"))
        .select_from(fts)
        .where(literal_column(SQLITE_TABLE).op("MATCH")(phrase))
    )
    rowid: ColumnElement[Any] = literal_column(f"{Conversation.__tablename__}.rowid")
    return compiler.process(and_(rowid.in_(candidates), element.pattern), **kw)


def matching(query: str) -> ColumnElement[bool]:
    """The threads whose contact or name holds `query` (any case)."""
    return _Matching(query)
