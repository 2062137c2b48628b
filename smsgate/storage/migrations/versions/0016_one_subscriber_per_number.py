"""One subscriber per number: opt-outs and threads keyed by the subscriber

Mexico's legacy mobile '1' (+52 1 55… for +52 55…) made one person two: two opt-outs, two
threads. Opt-outs and conversations get a `subscriber` column (kit.phones.subscriber: E.164
without the legacy '1'), unique where the number as written was; the number as written stays.
Rows that turn out to be the same subscriber are merged: the older opt-out is kept; the threads
of one line, subscriber and family become the oldest of them (and its contact as written), with
every message of the others, their unread counts summed, the later read mark and the newest
last message, a name if any had one, and archived only if all were.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 06:30:00.000000
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# the key as SQL, for Mexico's one equivalence (kit.phones.EQUIVALENCES): '+521' and ten digits
_KEY = (
    "CASE WHEN {col} LIKE '+521__________' AND length({col}) = 14 "
    "THEN '+52' || substr({col}, 5) ELSE {col} END"
)


# On SQLite, changing a table's constraints rebuilds the table, and dropping the old one would
# run its foreign keys' ON DELETE actions (every message would leave its thread): so the new
# keys are unique indexes, added beside the old constraints, which they make redundant.
_THREAD_KEY = ["account_id", "device_id", "sim_key", "subscriber", "family"]


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column(
        "opt_outs", sa.Column("subscriber", sa.String(512), nullable=False, server_default="")
    )
    key = _KEY.format(col="phone_number")
    bind.execute(sa.text(f"UPDATE opt_outs SET subscriber = {key}"))  # noqa: S608 (constant)
    bind.execute(
        sa.text(
            "DELETE FROM opt_outs WHERE id IN (SELECT later.id FROM opt_outs later "
            "JOIN opt_outs earlier ON earlier.account_id = later.account_id "
            "AND earlier.subscriber = later.subscriber AND earlier.id < later.id)"
        )
    )
    op.create_index(
        "ix_opt_outs_account_id_subscriber", "opt_outs", ["account_id", "subscriber"], unique=True
    )
    op.add_column(
        "conversations",
        sa.Column("subscriber", sa.String(512), nullable=False, server_default=""),
    )
    key = _KEY.format(col="contact")
    bind.execute(sa.text(f"UPDATE conversations SET subscriber = {key}"))  # noqa: S608 (constant)
    _merge_threads(bind)
    op.create_index(
        "ix_conversations_account_id_device_id_sim_key_subscriber_family",
        "conversations",
        _THREAD_KEY,
        unique=True,
    )


def _merge_threads(bind: Any) -> None:
    rows = bind.execute(
        sa.text(
            "SELECT c.id, c.account_id, c.device_id, c.sim_key, c.family, c.subscriber, "
            "c.display_name, c.archived_at, c.last_message_id, c.last_message_at, "
            "c.last_preview, c.last_direction, c.unread_count, c.read_up_to_id "
            "FROM conversations c WHERE EXISTS (SELECT 1 FROM conversations o "
            "WHERE o.account_id = c.account_id AND o.device_id = c.device_id "
            "AND o.sim_key = c.sim_key AND o.family = c.family "
            "AND o.subscriber = c.subscriber AND o.id <> c.id) ORDER BY c.id"
        )
    ).mappings()
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        line = (row["account_id"], row["device_id"], row["sim_key"], row["family"])
        groups.setdefault((*line, row["subscriber"]), []).append(row)
    for threads in groups.values():
        kept, others = threads[0], threads[1:]  # ordered by id: the oldest is kept
        newest = max(threads, key=lambda t: t["last_message_id"] or "")
        marks = [t["read_up_to_id"] for t in threads if t["read_up_to_id"]]
        names = [t["display_name"] for t in threads if t["display_name"]]
        for other in others:
            bind.execute(
                sa.text(
                    "UPDATE message_recipients SET conversation_id = :kept "
                    "WHERE conversation_id = :other"
                ),
                {"kept": kept["id"], "other": other["id"]},
            )
            bind.execute(
                sa.text("DELETE FROM conversations WHERE id = :other"), {"other": other["id"]}
            )
        bind.execute(
            sa.text(
                "UPDATE conversations SET display_name = :name, archived_at = :archived, "
                "last_message_id = :last_id, last_message_at = :last_at, "
                "last_preview = :preview, last_direction = :direction, "
                "unread_count = :unread, read_up_to_id = :read WHERE id = :id"
            ),
            {
                "id": kept["id"],
                "name": kept["display_name"] or (names[0] if names else None),
                "archived": kept["archived_at"] if all(t["archived_at"] for t in threads) else None,
                "last_id": newest["last_message_id"],
                "last_at": newest["last_message_at"],
                "preview": newest["last_preview"],
                "direction": newest["last_direction"],
                "unread": sum(t["unread_count"] or 0 for t in threads),
                "read": max(marks) if marks else None,
            },
        )


def downgrade() -> None:
    # merged rows stay merged; ALTER TABLE ... DROP COLUMN: no table rebuild on SQLite either
    op.drop_index(
        "ix_conversations_account_id_device_id_sim_key_subscriber_family", "conversations"
    )
    op.execute("ALTER TABLE conversations DROP COLUMN subscriber")
    op.drop_index("ix_opt_outs_account_id_subscriber", "opt_outs")
    op.execute("ALTER TABLE opt_outs DROP COLUMN subscriber")
