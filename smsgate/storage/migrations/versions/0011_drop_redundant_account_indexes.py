"""drop single-column account_id indexes that a composite index already covers

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 06:40:00

Each of these tables has an index or unique constraint whose first column is account_id; it
serves tenant look-ups and the ON DELETE CASCADE from accounts on both databases, so the index
on account_id alone only cost every insert (a send writes three of these tables).
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLES = (
    "messages",
    "message_recipients",
    "early_statuses",
    "events",
    "webhooks",
    "conversations",
    "opt_outs",
    "usage_counters",
)


def upgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_account_id", table_name=table)


def downgrade() -> None:
    for table in TABLES:
        op.create_index(f"ix_{table}_account_id", table, ["account_id"], unique=False)
