"""early provider statuses

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 04:28:09.912618
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import smsgate.storage.base

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "early_statuses",
        sa.Column("device_id", sa.String(length=25), nullable=False),
        sa.Column("provider_id", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("at", smsgate.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=25), nullable=False),
        sa.Column("created_at", smsgate.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.String(length=25), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_early_statuses_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_early_statuses_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_early_statuses")),
    )
    with op.batch_alter_table("early_statuses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_early_statuses_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            "ix_early_statuses_account_provider", ["account_id", "provider_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_early_statuses_device_id"), ["device_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("early_statuses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_early_statuses_device_id"))
        batch_op.drop_index("ix_early_statuses_account_provider")
        batch_op.drop_index(batch_op.f("ix_early_statuses_account_id"))

    op.drop_table("early_statuses")
