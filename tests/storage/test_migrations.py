"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from sqlalchemy import text

from smsgate.app import create_app
from smsgate.models import metadata
from smsgate.storage import migrate
from smsgate.storage.db import Database
from tests.factories import pair_phone, signup
from tests.serving import own_database


async def test_models_and_migrations_agree(app: FastAPI) -> None:
    def diff(connection):
        def described(obj, name, kind, reflected, compared_to) -> bool:
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


async def test_threads_survive_the_rebuild_that_lets_them_outlive_their_phone(
    settings, tmp_path
) -> None:
    """0021 rebuilds the conversations table on SQLite (its device may become null): the rows
    that refer to it keep their references (the keys are off while it is rebuilt, and checked
    after), and the search index, whose triggers go with the old table, finds them again."""
    async with own_database(settings, tmp_path) as own:
        await asyncio.to_thread(migrate.upgrade, own)
        app = create_app(own)
        try:
            user = await signup(app)
            phone = await pair_phone(user)
            for n, number in enumerate(("+525511112222", "+525533334444")):
                await phone.inbox([{"phoneNumber": number, "message": "hola", "id": f"i{n}"}])
            await user.client.aclose()
        finally:
            await app.state.webhook_http.aclose()
            await app.state.send_writer.close()
            await app.state.reports.close()
            await app.state.db.dispose()
        await asyncio.to_thread(migrate.downgrade, own, "0020")
        await asyncio.to_thread(migrate.upgrade, own)
        database = Database(own)
        try:
            async with database.engine.connect() as conn:
                linked = (
                    await conn.execute(
                        text(
                            "SELECT c.contact FROM message_recipients r "
                            "JOIN conversations c ON c.id = r.conversation_id "
                            "WHERE r.account_id = :a ORDER BY c.contact"
                        ),
                        {"a": user.account_id},
                    )
                ).scalars()
                assert list(linked) == ["+525511112222", "+525533334444"]
                if conn.dialect.name == "sqlite":
                    found = (
                        await conn.execute(
                            text(
                                "SELECT c.contact FROM conversations c WHERE c.rowid IN "
                                "(SELECT rowid FROM conversations_search "
                                "WHERE conversations_search MATCH '\"33334\"')"
                            )
                        )
                    ).scalars()
                    assert list(found) == ["+525533334444"]
        finally:
            await database.dispose()
