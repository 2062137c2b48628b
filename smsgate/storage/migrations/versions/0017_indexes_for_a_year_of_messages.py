"""Indexes for a year of messages: a thread's messages in id order, and the queue the
periodic jobs look at (messages still processing), as a partial index

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_PROCESSING = sa.text("state = 'processing'")


def upgrade() -> None:
    # the composite serves what the single-column index did (the foreign key's look-ups)
    op.drop_index("ix_message_recipients_conversation_id", "message_recipients")
    op.create_index(
        "ix_message_recipients_conversation_id_message_id",
        "message_recipients",
        ["conversation_id", "message_id"],
    )
    op.create_index(
        "ix_messages_processing",
        "messages",
        ["acknowledged_at"],
        sqlite_where=_PROCESSING,
        postgresql_where=_PROCESSING,
    )


def downgrade() -> None:
    op.drop_index("ix_messages_processing", "messages")
    op.drop_index("ix_message_recipients_conversation_id_message_id", "message_recipients")
    op.create_index(
        "ix_message_recipients_conversation_id", "message_recipients", ["conversation_id"]
    )
