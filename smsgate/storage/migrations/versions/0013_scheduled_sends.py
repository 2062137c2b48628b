"""scheduled sends: messages.schedule_at

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import smsgate.storage.base

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(
            sa.Column("schedule_at", smsgate.storage.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch.create_index(batch.f("ix_messages_schedule_at"), ["schedule_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_index(batch.f("ix_messages_schedule_at"))
        batch.drop_column("schedule_at")
