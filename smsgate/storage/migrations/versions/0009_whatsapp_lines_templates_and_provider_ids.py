"""whatsapp lines, templates and provider message ids

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 01:36:16.569569
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("credentials_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("link", sa.JSON(), nullable=True))

    with op.batch_alter_table("message_recipients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider_message_id", sa.String(length=128), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_message_recipients_provider_message_id"),
            ["provider_message_id"],
            unique=False,
        )

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("template", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("template")

    with op.batch_alter_table("message_recipients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_recipients_provider_message_id"))
        batch_op.drop_column("provider_message_id")

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("link")
        batch_op.drop_column("credentials_encrypted")
        batch_op.drop_column("provider")
