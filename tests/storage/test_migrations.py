"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI

from smsgate.models import metadata


async def test_models_and_migrations_agree(app: FastAPI) -> None:
    def diff(connection):  # type: ignore[no-untyped-def]
        def described(obj, name, kind, reflected, compared_to) -> bool:  # type: ignore[no-untyped-def]
            # the search index (conversations/search.py) is SQL of its own: an FTS5 table and
            # its shadow tables on SQLite, an expression index on PostgreSQL
            return not (name or "").startswith(("conversations_search", "ix_conversations_search"))

        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": described}
        )
        return compare_metadata(context, metadata)

    async with app.state.db.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


async def test_migrations_are_at_head(client) -> None:
    ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text


def test_every_tenant_table_has_exactly_one_leading_account_index() -> None:
    """Tenant look-ups and the cascade from a deleted account need an index whose first column
    is account_id; a second one (the column alone beside a composite) only slows inserts."""
    from sqlalchemy import Index, UniqueConstraint

    for table in metadata.sorted_tables:
        if "account_id" not in table.c or table.name == "accounts":
            continue
        covering = [
            [c.name for c in index.columns]
            for index in [*table.indexes, *table.constraints]
            if isinstance(index, Index | UniqueConstraint)
        ]
        leading = [columns for columns in covering if columns[:1] == ["account_id"]]
        assert leading, f"{table.name}: no index starts with account_id"
        if len(leading) > 1:
            assert ["account_id"] not in leading, f"{table.name}: redundant account_id index"
