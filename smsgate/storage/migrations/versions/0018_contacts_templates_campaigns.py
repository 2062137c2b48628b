"""Contacts, templates and campaigns; a message's campaign

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 12:10:00.000000
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from smsgate.storage.base import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def _owned(table: str) -> list[Any]:
    """The id and account columns of a tenant table, with their constraints' names."""
    return [
        sa.Column("id", sa.String(25), nullable=False),
        sa.Column("account_id", sa.String(25), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f(f"fk_{table}_account_id_accounts"),
            ondelete="CASCADE",
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "contacts",
        *_owned("contacts"),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("phone_number", sa.String(512), nullable=False),
        sa.Column("subscriber", sa.String(512), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint(
            "account_id", "subscriber", name=op.f("uq_contacts_account_id_subscriber")
        ),
    )
    op.create_table(
        "templates",
        *_owned("templates"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("whatsapp", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_templates_account_id", "templates", ["account_id"])
    op.create_table(
        "campaigns",
        *_owned("campaigns"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("template_id", sa.String(25), nullable=True),
        sa.Column("schedule_at", UTCDateTime(), nullable=True),
        sa.Column("device_ids", sa.JSON(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.JSON(), nullable=False),
        sa.Column("names", sa.JSON(), nullable=False),
        sa.Column("rows", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_campaigns_template_id_templates"),
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_campaigns_account_id_id", "campaigns", ["account_id", "id"])
    op.create_index("ix_campaigns_template_id", "campaigns", ["template_id"])
    op.add_column("messages", sa.Column("campaign_id", sa.String(25), nullable=True))
    op.create_index("ix_messages_campaign_id", "messages", ["campaign_id"])


def downgrade() -> None:
    op.drop_index("ix_messages_campaign_id", "messages")
    op.execute("ALTER TABLE messages DROP COLUMN campaign_id")
    op.drop_table("campaigns")
    op.drop_table("templates")
    op.drop_table("contacts")
