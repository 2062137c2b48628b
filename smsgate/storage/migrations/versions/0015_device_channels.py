"""devices.channels: what a phone declared it can carry (null: the stock app's sms and data)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 03:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("channels", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("channels")
