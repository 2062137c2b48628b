"""idempotency keys

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 15:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import smsgate.storage.base

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("body_encrypted", sa.Text(), nullable=False),
        sa.Column("id", sa.String(length=25), nullable=False),
        sa.Column("created_at", smsgate.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.String(length=25), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_idempotency_keys_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("account_id", "key", name=op.f("uq_idempotency_keys_account_id_key")),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
