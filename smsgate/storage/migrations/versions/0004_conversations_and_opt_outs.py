"""conversations and opt-outs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 23:53:48.083982
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import smsgate.storage.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "opt_outs",
        sa.Column("id", sa.String(length=25), nullable=False),
        sa.Column("phone_number", sa.String(length=512), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("keyword", sa.String(length=40), nullable=True),
        sa.Column("created_at", smsgate.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.String(length=25), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_opt_outs_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opt_outs")),
        sa.UniqueConstraint(
            "account_id", "phone_number", name=op.f("uq_opt_outs_account_id_phone_number")
        ),
    )
    with op.batch_alter_table("opt_outs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_opt_outs_account_id"), ["account_id"], unique=False)

    op.create_table(
        "conversations",
        sa.Column("device_id", sa.String(length=25), nullable=False),
        sa.Column("sim_key", sa.Integer(), nullable=False),
        sa.Column("contact", sa.String(length=512), nullable=False),
        sa.Column("family", sa.String(length=10), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("archived_at", smsgate.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_message_id", sa.String(length=25), nullable=True),
        sa.Column(
            "last_message_at", smsgate.storage.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("last_preview", sa.Text(), nullable=True),
        sa.Column("last_direction", sa.String(length=3), nullable=True),
        sa.Column("unread_count", sa.Integer(), nullable=False),
        sa.Column("read_up_to_id", sa.String(length=25), nullable=True),
        sa.Column("id", sa.String(length=25), nullable=False),
        sa.Column("created_at", smsgate.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.String(length=25), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_conversations_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_conversations_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
        sa.UniqueConstraint(
            "account_id",
            "device_id",
            "sim_key",
            "contact",
            "family",
            name=op.f("uq_conversations_account_id_device_id_sim_key_contact_family"),
        ),
    )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conversations_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            "ix_conversations_activity", ["account_id", "last_message_id"], unique=False
        )

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("settings", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )

    with op.batch_alter_table("message_recipients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("conversation_id", sa.String(length=25), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_message_recipients_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_message_recipients_conversation_id_conversations"),
            "conversations",
            ["conversation_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:

    with op.batch_alter_table("message_recipients", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_message_recipients_conversation_id_conversations"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_message_recipients_conversation_id"))
        batch_op.drop_column("conversation_id")

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("settings")

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_activity")
        batch_op.drop_index(batch_op.f("ix_conversations_account_id"))

    op.drop_table("conversations")
    with op.batch_alter_table("opt_outs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_opt_outs_account_id"))

    op.drop_table("opt_outs")
