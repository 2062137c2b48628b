"""A conversation outlives its phone: deleting a device keeps its threads (their device becomes
null) instead of deleting them with everything they held

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 15:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

FK = "fk_conversations_device_id_devices"

# SQLite rebuilds the table (migrations run with its foreign keys off: storage.db.make_engine),
# which drops the search index's triggers and may renumber its rows: both are made again.
_SEARCH_TRIGGERS = [
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
]


def _device_fk(ondelete: str, nullable: bool) -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_constraint(FK, type_="foreignkey")
        batch.alter_column("device_id", existing_type=sa.String(25), nullable=nullable)
        batch.create_foreign_key(FK, "devices", ["device_id"], ["id"], ondelete=ondelete)
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for trigger in _SEARCH_TRIGGERS:
            bind.execute(sa.text(trigger))
        bind.execute(
            sa.text("INSERT INTO conversations_search(conversations_search) VALUES ('rebuild')")
        )


def upgrade() -> None:
    _device_fk("SET NULL", nullable=True)


def downgrade() -> None:
    # threads whose phone is gone cannot be kept: their messages leave them first (the keys
    # are off, nothing would do it for them)
    orphans = "SELECT id FROM conversations WHERE device_id IS NULL"
    op.execute(
        f"UPDATE message_recipients SET conversation_id = NULL WHERE conversation_id IN ({orphans})"  # noqa: S608
    )
    op.execute("DELETE FROM conversations WHERE device_id IS NULL")
    _device_fk("CASCADE", nullable=False)
