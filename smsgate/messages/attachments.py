"""Attachments of received MMS: stored up to a size cap, listed on their message, served to
their owner."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from smsgate.accounts.models import Account
from smsgate.billing import plans
from smsgate.config import Settings
from smsgate.errors import not_found
from smsgate.kit import clock
from smsgate.kit.ids import new_id
from smsgate.messages.models import attachments_table
from smsgate.messages.schemas import Row

MAX_PER_MESSAGE = 20


MIB = 1024 * 1024


async def stored_bytes(session: AsyncSession | AsyncConnection, account_id: str) -> int:
    """The bytes of files the account keeps."""
    a = attachments_table
    total = await session.execute(
        select(func.coalesce(func.sum(a.c.size), 0)).where(
            a.c.account_id == account_id, a.c.data.is_not(None)
        )
    )
    return int(total.scalar_one())


async def room(session: AsyncSession, account_id: str, settings: Settings) -> int | None:
    """Bytes of files the account may still keep under its plan's `storage_mb` (None: no
    limit)."""
    plan_id = (
        await session.execute(select(Account.plan).where(Account.id == account_id))
    ).scalar_one_or_none()
    plan = plans.get(plan_id or "", settings.plans_file, settings.default_plan)
    if plan.storage_bytes is None:
        return None
    return max(0, plan.storage_bytes - await stored_bytes(session, account_id))


async def store(
    session: AsyncSession,
    account_id: str,
    message_id: str,
    parts: Iterable[Any],
    max_bytes: int,
    room: int | None = None,
) -> int:
    """Keep the parts a phone sent: `{contentType, name?, data (base64)}`; data over the cap,
    past the account's `room` (its plan's storage), or not valid base64 is dropped, its
    description kept."""
    rows = []
    for part in list(parts)[:MAX_PER_MESSAGE]:
        if not isinstance(part, Mapping):
            continue
        raw = part.get("data")
        data: bytes | None = None
        size = part.get("size") if isinstance(part.get("size"), int) else 0
        if isinstance(raw, str):
            try:
                data = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                data = None
            if data is not None:
                size = len(data)
                if size > max_bytes or (room is not None and size > room):
                    data = None
                elif room is not None:
                    room -= size
        rows.append(
            {
                "id": new_id(),
                "account_id": account_id,
                "message_id": message_id,
                "content_type": str(part.get("contentType") or "application/octet-stream")[:200],
                "name": str(part["name"])[:255] if part.get("name") else None,
                "size": int(size or 0),
                "data": data,
                "created_at": clock.now(),
            }
        )
    if rows:
        await session.execute(insert(attachments_table), rows)
    return len(rows)


async def stored_file(
    session: AsyncSession, account_id: str, message_id: str, attachment_id: str
) -> tuple[str, str | None, bytes]:
    """A received file's type, name and bytes, to its owner only; 404 when it is not theirs,
    or was over the size cap (its bytes were never kept)."""
    a = attachments_table
    row = (
        await session.execute(
            select(a.c.content_type, a.c.name, a.c.data).where(
                a.c.id == attachment_id,
                a.c.message_id == message_id,
                a.c.account_id == account_id,
            )
        )
    ).first()
    if row is None or row.data is None:
        raise not_found("attachment")
    return row.content_type, row.name, row.data


async def of_messages(session: AsyncSession, message_ids: Sequence[str]) -> dict[str, list[Row]]:
    """Descriptions (without data) of the attachments of these messages."""
    found: dict[str, list[Row]] = {}
    if not message_ids:
        return found
    a = attachments_table
    rows = await session.execute(
        select(
            a.c.id,
            a.c.message_id,
            a.c.content_type,
            a.c.name,
            a.c.size,
            (a.c.data.is_not(None)).label("stored"),
        )
        .where(a.c.message_id.in_(list(message_ids)))
        .order_by(a.c.id)
    )
    for row in rows.mappings().all():
        found.setdefault(row["message_id"], []).append(row)
    return found


def outgoing_rows(
    account_id: str,
    message_id: str,
    files: Sequence[tuple[str | None, str, bytes]],
    now: datetime,
) -> list[dict[str, Any]]:
    """The files of an MMS being sent (name, content type, bytes; fetched already) as rows of
    the attachments table, written with the message (messages/sending/batch.py)."""
    return [
        {
            "id": new_id(),
            "account_id": account_id,
            "message_id": message_id,
            "content_type": content_type[:200],
            "name": name[:255] if name else None,
            "size": len(data),
            "data": data,
            "created_at": now,
        }
        for name, content_type, data in files
    ]


async def for_phone(
    session: AsyncSession, message_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """The attachments of MMS being handed to a phone, in the app's format:
    `{contentType, name?, data (base64)}`."""
    found: dict[str, list[dict[str, Any]]] = {}
    if not message_ids:
        return found
    a = attachments_table
    rows = await session.execute(
        select(a.c.message_id, a.c.content_type, a.c.name, a.c.data)
        .where(a.c.message_id.in_(list(message_ids)), a.c.data.is_not(None))
        .order_by(a.c.id)
    )
    for row in rows.mappings():
        part: dict[str, Any] = {"contentType": row["content_type"]}
        if row["name"]:
            part["name"] = row["name"]
        part["data"] = base64.b64encode(row["data"]).decode()
        found.setdefault(row["message_id"], []).append(part)
    return found


def attachment_out(message_id: str, row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "contentType": row["content_type"],
        "name": row["name"],
        "size": row["size"],
        "url": f"/api/v1/messages/{message_id}/attachments/{row['id']}" if row["stored"] else None,
    }


async def described(session: AsyncSession, rows: Sequence[Row]) -> dict[str, list[dict[str, Any]]]:
    """Descriptions of received files (MMS, WhatsApp), for the rows that can have them."""
    ids = [r["id"] for r in rows if r["channel"] in ("mms", "whatsapp") and r["direction"] == "in"]
    found = await of_messages(session, ids)
    return {
        message_id: [attachment_out(message_id, a) for a in parts]
        for message_id, parts in found.items()
    }
