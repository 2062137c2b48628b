"""The raw SQLite path writes values exactly as SQLAlchemy would (its own faster encoders)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import JSON
from sqlalchemy.dialects import sqlite

from smsgate.messages.models import messages_table
from smsgate.storage.base import UTCDateTime
from smsgate.storage.rawsqlite import TableCodec


def test_datetimes_are_stored_as_sqlalchemy_stores_them() -> None:
    dialect = sqlite.dialect()
    sqlalchemy_bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    codec = TableCodec(messages_table, dialect)
    position = codec.columns.index("created_at")
    mexico = timezone(timedelta(hours=-6))
    for value in (
        datetime(2026, 4, 24, 10, 0, tzinfo=UTC),
        datetime(2026, 4, 24, 10, 0, 0, 123000, tzinfo=UTC),
        datetime(2026, 4, 24, 4, 0, 0, 5, tzinfo=mexico),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1),  # naive: taken as UTC
        None,
    ):
        row = dict.fromkeys(codec.columns) | {"created_at": value}
        assert codec.params(row)[position] == sqlalchemy_bind(value), value


def test_json_is_stored_as_sqlalchemy_stores_it() -> None:
    dialect = sqlite.dialect()
    sqlalchemy_bind = JSON().dialect_impl(dialect).bind_processor(dialect)
    codec = TableCodec(messages_table, dialect)
    position = codec.columns.index("media_urls")
    for value in (None, [], ["https://example.com/a.jpg"], {"name": "é", "n": [1, None]}):
        row = dict.fromkeys(codec.columns) | {"media_urls": value}
        assert codec.params(row)[position] == sqlalchemy_bind(value), value
