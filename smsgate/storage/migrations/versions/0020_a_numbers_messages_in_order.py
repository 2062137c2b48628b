"""A number's messages in order: the recipients' (account, number) index gains the message id,
so the newest page of a number with thousands of messages is read without the rest

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 15:20:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_message_recipients_account_number_message",
        "message_recipients",
        ["account_id", "phone_number", "message_id"],
    )
    op.drop_index("ix_message_recipients_account_id_phone_number", "message_recipients")


def downgrade() -> None:
    op.create_index(
        "ix_message_recipients_account_id_phone_number",
        "message_recipients",
        ["account_id", "phone_number"],
    )
    op.drop_index("ix_message_recipients_account_number_message", "message_recipients")
