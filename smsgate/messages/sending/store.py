"""What the batch algorithm (batch.py) needs of a database: a few statements, no rules.

Two drivers implement it, one per database, each on the fastest connection its database has
(sqlite.py: the plain sqlite3 module; postgres.py: asyncpg). Each call runs inside the
transaction the driver's caller opened, so a batch commits or rolls back whole. Rows are plain
dicts keyed by column name, written and read back exactly as SQLAlchemy would (the rest of the
application reads them through the ORM).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Table

Row = dict[str, Any]


class BatchStore(Protocol):
    async def insert(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert rows (every column given) into the table."""

    async def insert_messages(self, rows: Sequence[Mapping[str, Any]]) -> set[str]:
        """Insert new messages; one whose (account_id, external_id) is taken already is left
        out. Returns the ids inserted."""

    async def rows(
        self,
        table: Table,
        where: Mapping[str, Collection[Any]],
        columns: Sequence[str] | None = None,
    ) -> list[Row]:
        """The table's rows (all columns, or `columns`) whose every `where` column has one of
        its values."""

    async def run(self, sql: str, params: Mapping[str, Any]) -> int:
        """One statement with `:name` parameters; the number of rows it changed."""

    async def run_many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> None:
        """One statement with `:name` parameters, for each set of parameters."""

    async def value(self, sql: str, params: Mapping[str, Any]) -> Any:
        """The first column of the first row a `:name`-parameter query returns (or None)."""


def with_defaults(table: Table, rows: Sequence[Mapping[str, Any]]) -> list[Row]:
    """Rows completed as an ORM insert would complete them: a column not given takes its
    constant default, or NULL if it has none. (The stores insert every column as given; the
    send path's own rows give them all.) A column with a computed default must be given."""
    missing: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if default is None:
            missing[column.name] = None
        elif getattr(default, "is_scalar", False):
            missing[column.name] = getattr(default, "arg", None)
    completed = []
    for row in rows:
        absent = [c.name for c in table.columns if c.name not in row and c.name not in missing]
        if absent:
            raise ValueError(f"{table.name}: no value for {', '.join(absent)}")
        completed.append({**missing, **row})
    return completed
