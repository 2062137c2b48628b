"""DeclarativeBase, column types and the mixins every table uses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, DateTime, Dialect, ForeignKey, MetaData, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import NullType, TypeDecorator

from smsgate.kit import clock
from smsgate.kit.ids import new_id

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python; timestamptz on PostgreSQL, naive UTC text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = clock.as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class IdMixin:
    id: Mapped[str] = mapped_column(String(25), primary_key=True, default=new_id)


class CreatedMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class TenantMixin:
    """Marks a tenant-owned table: every row belongs to exactly one account."""

    # False on a table whose own composite index or unique constraint starts with account_id:
    # that one serves tenant look-ups and the cascade from accounts, and a second index on the
    # column alone would only cost every insert (tests/storage/test_migrations.py checks both)
    account_index: ClassVar[bool] = True

    @declared_attr
    def account_id(cls) -> Mapped[str]:
        return mapped_column(
            String(25),
            ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
            index=cls.account_index,
        )


class Selective(ColumnElement[bool]):
    """A condition that keeps few rows, said so to SQLite's planner (`likelihood`), which
    otherwise takes a range on an index's second column as keeping a quarter of them and may
    prefer an index that walks every row of the account; PostgreSQL's statistics see it."""

    inherit_cache = True
    type = NullType()  # type: ignore[assignment]  # a Boolean is compared with 1 on SQLite

    def __init__(self, condition: ColumnElement[bool]) -> None:
        self.condition = condition


@compiles(Selective)
def _selective(element: Selective, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.condition, **kw)


@compiles(Selective, "sqlite")
def _selective_sqlite(element: Selective, compiler: SQLCompiler, **kw: Any) -> str:
    return f"likelihood({compiler.process(element.condition, **kw)}, 0.01)"
