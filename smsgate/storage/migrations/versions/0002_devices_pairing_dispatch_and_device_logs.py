"""devices, pairing, dispatch and device logs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 23:19:27.743638
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import smsgate.storage.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "login_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", smsgate.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", smsgate.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=25), nullable=False),
        sa.Column("created_at", smsgate.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.String(length=25), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_login_codes_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_login_codes_code_hash")),
    )
    with op.batch_alter_table("login_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_codes_account_id"), ["account_id"], unique=False)

    op.create_table(
        "device_logs",
        sa.Column("device_id", sa.String(length=25), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("id", sa.String(length=25), nullable=False),
        sa.Column("created_at", smsgate.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.String(length=25), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_device_logs_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_logs_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_logs")),
    )
    with op.batch_alter_table("device_logs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_device_logs_account_id"), ["account_id"], unique=False)
        batch_op.create_index("ix_device_logs_device_id_id", ["device_id", "id"], unique=False)

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("paired_at", smsgate.storage.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("token_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("pairing_token_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("pairing_code_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column(
                "pairing_expires_at", smsgate.storage.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("sim_cards", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("app_version", sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column("push_token", sa.String(length=256), nullable=True))
        batch_op.add_column(
            sa.Column("settings", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(sa.Column("signing_key_encrypted", sa.Text(), nullable=True))
        batch_op.alter_column(
            "name",
            existing_type=sa.VARCHAR(length=100),
            type_=sa.String(length=128),
            existing_nullable=False,
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_devices_pairing_code_hash"), ["pairing_code_hash"]
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_devices_pairing_token_hash"), ["pairing_token_hash"]
        )
        batch_op.create_unique_constraint(batch_op.f("uq_devices_token_hash"), ["token_hash"])

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assigned_device_id", sa.String(length=25), nullable=True))
        batch_op.add_column(
            sa.Column("handed_at", smsgate.storage.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "acknowledged_at", smsgate.storage.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "cancel_requested_at",
                smsgate.storage.base.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.create_index(
            batch_op.f("ix_messages_assigned_device_id"), ["assigned_device_id"], unique=False
        )
        batch_op.create_index(
            "ix_messages_queue", ["account_id", "state", "acknowledged_at"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_messages_assigned_device_id_devices"),
            "devices",
            ["assigned_device_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_messages_assigned_device_id_devices"), type_="foreignkey"
        )
        batch_op.drop_index("ix_messages_queue")
        batch_op.drop_index(batch_op.f("ix_messages_assigned_device_id"))
        batch_op.drop_column("cancel_requested_at")
        batch_op.drop_column("acknowledged_at")
        batch_op.drop_column("handed_at")
        batch_op.drop_column("assigned_device_id")

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_devices_token_hash"), type_="unique")
        batch_op.drop_constraint(batch_op.f("uq_devices_pairing_token_hash"), type_="unique")
        batch_op.drop_constraint(batch_op.f("uq_devices_pairing_code_hash"), type_="unique")
        batch_op.alter_column(
            "name",
            existing_type=sa.String(length=128),
            type_=sa.VARCHAR(length=100),
            existing_nullable=False,
        )
        batch_op.drop_column("signing_key_encrypted")
        batch_op.drop_column("settings")
        batch_op.drop_column("push_token")
        batch_op.drop_column("app_version")
        batch_op.drop_column("sim_cards")
        batch_op.drop_column("pairing_expires_at")
        batch_op.drop_column("pairing_code_hash")
        batch_op.drop_column("pairing_token_hash")
        batch_op.drop_column("token_hash")
        batch_op.drop_column("paired_at")

    with op.batch_alter_table("device_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_device_logs_device_id_id")
        batch_op.drop_index(batch_op.f("ix_device_logs_account_id"))

    op.drop_table("device_logs")
    with op.batch_alter_table("login_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_codes_account_id"))

    op.drop_table("login_codes")
