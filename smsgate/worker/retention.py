"""Retention: forget what an operator chose not to keep (privacy), in bounded batches.

- message bodies and numbers of finished messages older than SMSGATE_RETENTION_MESSAGE_DAYS:
  the text, media URLs and WhatsApp template (with its parameters) are cleared and each number
  replaced by `hash:` and the first 16 hex characters of its SHA-256 (still countable and
  comparable, no longer readable);
- finished webhook deliveries (and their attempts) older than SMSGATE_RETENTION_DELIVERY_DAYS;
- device logs older than SMSGATE_RETENTION_LOG_DAYS.
0 keeps everything (the default).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, delete, null, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.config import Settings
from smsgate.devices.models import DeviceLog
from smsgate.kit import clock
from smsgate.messages import states
from smsgate.messages.models import messages_table, recipients_table
from smsgate.webhooks.models import Delivery

BATCH = 1000


def _holds(column: ColumnElement[Any]) -> ColumnElement[bool]:
    """A JSON column with a value: neither SQL NULL nor JSON null (which is how SQLAlchemy and
    the send writer store None)."""
    return column.is_not(None) & (cast(column, Text) != "null")


def _hashed(number: str) -> str:
    return "hash:" + hashlib.sha256(number.encode()).hexdigest()[:16]


async def prune(session: AsyncSession, settings: Settings) -> dict[str, int]:
    now = clock.now()
    done = {"messages": 0, "deliveries": 0, "logs": 0}
    if settings.retention_message_days:
        m, r = messages_table, recipients_table
        cutoff = now - timedelta(days=settings.retention_message_days)
        ids = list(
            (
                await session.execute(
                    select(m.c.id)
                    .where(
                        m.c.created_at < cutoff,
                        m.c.state.in_(list(states.FINAL)),
                        m.c.content.is_not(None) | _holds(m.c.media_urls) | _holds(m.c.template),
                    )
                    .order_by(m.c.created_at)
                    .limit(BATCH)
                )
            ).scalars()
        )
        if ids:
            # SQL NULL, not JSON null: a pruned row must not match the query above again
            await session.execute(
                update(m)
                .where(m.c.id.in_(ids))
                .values(content=None, media_urls=null(), template=null())
            )
            rows = await session.execute(
                select(r.c.id, r.c.phone_number).where(
                    r.c.message_id.in_(ids), ~r.c.phone_number.startswith("hash:")
                )
            )
            for recipient_id, number in rows.all():
                await session.execute(
                    update(r).where(r.c.id == recipient_id).values(phone_number=_hashed(number))
                )
        done["messages"] = len(ids)
    if settings.retention_delivery_days:
        cutoff = now - timedelta(days=settings.retention_delivery_days)
        gone = await session.execute(
            delete(Delivery).where(Delivery.status != "pending", Delivery.updated_at < cutoff)
        )
        done["deliveries"] = int(gone.rowcount or 0)  # type: ignore[attr-defined]
    if settings.retention_log_days:
        cutoff = now - timedelta(days=settings.retention_log_days)
        gone = await session.execute(delete(DeviceLog).where(DeviceLog.created_at < cutoff))
        done["logs"] = int(gone.rowcount or 0)  # type: ignore[attr-defined]
    return done
