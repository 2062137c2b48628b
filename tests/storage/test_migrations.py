"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI

from smsgate.storage.models import metadata


async def test_models_and_migrations_agree(app: FastAPI) -> None:
    def diff(connection):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)

    async with app.state.db.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


async def test_migrations_are_at_head(client) -> None:
    ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text
