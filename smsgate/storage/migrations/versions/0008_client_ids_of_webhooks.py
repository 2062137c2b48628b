"""client ids of webhooks

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 00:38:20.929493
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_id", sa.String(length=36), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_webhooks_account_id_client_id"), ["account_id", "client_id"]
        )


def downgrade() -> None:

    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_webhooks_account_id_client_id"), type_="unique")
        batch_op.drop_column("client_id")
