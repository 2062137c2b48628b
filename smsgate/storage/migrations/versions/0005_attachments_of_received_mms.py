"""attachments of received mms

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 23:59:48.399004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import smsgate.storage.base

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "attachments",
        sa.Column("message_id", sa.String(length=25), nullable=False),
        sa.Column("content_type", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("id", sa.String(length=25), nullable=False),
        sa.Column("created_at", smsgate.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.String(length=25), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_attachments_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_attachments_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachments_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_attachments_message_id"), ["message_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachments_message_id"))
        batch_op.drop_index(batch_op.f("ix_attachments_account_id"))

    op.drop_table("attachments")
