"""Conversation search from an index: trigrams of each thread's contact and name (SQLite FTS5,
PostgreSQL pg_trgm), so that looking for part of a number or a name reads the threads that
have it, not every thread of the account

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 15:00:00.000000
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

log = logging.getLogger("smsgate.migrate")
PG_INDEX = "ix_conversations_search"  # as conversations/search.py names it

# SQLite: an external-content FTS5 table over conversations (keyed by its rowid), kept by
# triggers whatever writes the threads (the API process or the send writer); read by
# conversations/search.py. A migration that rebuilds the conversations table must create the
# triggers again.
_SQLITE = [
    "CREATE VIRTUAL TABLE conversations_search USING fts5(contact, display_name, "
    "content='conversations', content_rowid='rowid', tokenize='trigram')",
    """CREATE TRIGGER conversations_search_insert AFTER INSERT ON conversations BEGIN
        INSERT INTO conversations_search(rowid, contact, display_name)
        VALUES (new.rowid, new.contact, new.display_name);
    END""",
    """CREATE TRIGGER conversations_search_delete AFTER DELETE ON conversations BEGIN
        INSERT INTO conversations_search(conversations_search, rowid, contact, display_name)
        VALUES ('delete', old.rowid, old.contact, old.display_name);
    END""",
    """CREATE TRIGGER conversations_search_update
    AFTER UPDATE OF contact, display_name ON conversations BEGIN
        INSERT INTO conversations_search(conversations_search, rowid, contact, display_name)
        VALUES ('delete', old.rowid, old.contact, old.display_name);
        INSERT INTO conversations_search(rowid, contact, display_name)
        VALUES (new.rowid, new.contact, new.display_name);
    END""",
    "INSERT INTO conversations_search(conversations_search) VALUES ('rebuild')",
]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in _SQLITE:
            bind.execute(sa.text(statement))
        return
    # pg_trgm is a trusted extension (PostgreSQL 13+): a database owner may create it. It goes
    # to `public`, not to this install's schema, whose removal would take it from every other.
    # Without it (an older server, no rights) search still works, by reading every thread.
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public"))
    except sa.exc.DBAPIError as exc:
        log.warning("conversation search without an index: pg_trgm unavailable (%s)", exc)
        return
    schema = bind.execute(
        sa.text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
            "ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
        )
    ).scalar_one()
    bind.execute(
        sa.text(
            f"CREATE INDEX {PG_INDEX} ON conversations USING gin "
            f"((lower(contact || ' ' || coalesce(display_name, ''))) "
            f'"{schema}".gin_trgm_ops)'
        )
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            bind.execute(sa.text(f"DROP TRIGGER IF EXISTS conversations_search_{trigger}"))
        bind.execute(sa.text("DROP TABLE IF EXISTS conversations_search"))
    else:
        bind.execute(sa.text(f"DROP INDEX IF EXISTS {PG_INDEX}"))
