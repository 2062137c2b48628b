"""A year-old install's messages, written in the app's own row shapes, fast.

One account's traffic over `days` days up to now: outbound SMS (one recipient each, their
state history) and inbound replies, spread over conversation threads of one phone (one busy
thread with 1 % of the messages, the rest spread evenly), a few names, and the last hundred
sends still waiting in the queue. Rows go in by the thousand through the app's own tables
(SQLAlchemy Core), on either database, into an account that already exists.

Used by `bench/scale.py` (the read paths timed at 100k and 1M messages) and by
`tests/storage/test_query_plans.py` (PostgreSQL plans on a table of realistic size).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from smsgate.conversations.models import Conversation
from smsgate.devices.models import Device
from smsgate.kit import phones
from smsgate.messages.models import history_table, messages_table, recipients_table

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
CHUNK = 2000
OUT_TEXT = "Recordatorio: su cita es mañana a las 10:00. Responda BAJA para no recibir más."
IN_TEXT = "Sí, ahí estaré, gracias"
QUEUED = 100  # the newest sends, still waiting for the phone


def _base36(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, rem = divmod(value, 36)
        digits.append(_ALPHABET[rem])
    return "".join(reversed(digits))


def _id(at: datetime, n: int, pick: random.Random) -> str:
    """An id as kit.ids makes them: the creation millisecond, a counter, random digits."""
    ms = int(at.timestamp() * 1000)
    tail = "".join(pick.choice(_ALPHABET) for _ in range(12))
    return "c" + _base36(ms, 8) + _base36(n % 36**4, 4) + tail


@dataclass
class Filled:
    device_id: str
    messages: int
    threads: int
    busy_thread: str
    busy_number: str
    quiet_thread: str
    quiet_number: str
    some_message: str


async def _insert(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        await conn.execute(insert(table), rows[start : start + CHUNK])


async def fill(
    conn: AsyncConnection,
    account_id: str,
    *,
    messages: int,
    threads: int | None = None,
    days: int = 90,
    seed: int = 7,
) -> Filled:
    """Write `messages` messages (and their rows) for `account_id`; commit is the caller's."""
    pick = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    threads = threads or max(2, messages // 24)
    device_id = _id(now - timedelta(days=days + 1), 0, pick)
    await conn.execute(
        insert(Device.__table__).values(
            id=device_id,
            account_id=account_id,
            name="Recepción",
            type="android",
            status="offline",
            settings={},
            created_at=now - timedelta(days=days + 1),
        )
    )
    numbers = sorted({f"+52155{pick.randrange(10**8):08d}" for _ in range(threads * 2)})
    pick.shuffle(numbers)
    numbers = numbers[:threads]
    times = sorted(now - timedelta(seconds=pick.random() * days * 86400) for _ in range(messages))
    thread_ids = [""] * threads
    last: dict[int, dict[str, Any]] = {}
    first_at: dict[int, datetime] = {}
    message_rows: list[dict[str, Any]] = []
    recipient_rows: list[dict[str, Any]] = []
    history_rows: list[dict[str, Any]] = []
    for n, at in enumerate(times):
        thread = 0 if pick.random() < 0.01 else pick.randrange(1, threads)
        inbound = pick.random() < 0.2
        queued = not inbound and n >= messages - QUEUED
        state = (
            "received"
            if inbound
            else "processing"
            if queued
            else pick.choices(["delivered", "failed", "sent"], [90, 5, 5])[0]
        )
        message_id = _id(at, n, pick)
        if thread not in first_at:
            first_at[thread] = at
            thread_ids[thread] = _id(at, n + 1, pick)
        content = IN_TEXT if inbound else OUT_TEXT
        message_rows.append(
            {
                "id": message_id,
                "account_id": account_id,
                "direction": "in" if inbound else "out",
                "channel": "sms",
                "state": state,
                "device_id": device_id,
                "content": content,
                "priority": 0,
                "with_delivery_report": True,
                "is_encrypted": False,
                "encoding": "UCS2",
                "segments": 2,
                "error": "RESULT_ERROR_GENERIC_FAILURE" if state == "failed" else None,
                "created_at": at,
                "updated_at": at,
                "assigned_device_id": None if inbound or queued else device_id,
                "handed_at": None if inbound or queued else at,
                "acknowledged_at": None if inbound or queued else at,
            }
        )
        recipient_rows.append(
            {
                "id": _id(at, n + 2, pick),
                "account_id": account_id,
                "message_id": message_id,
                "position": 0,
                "phone_number": numbers[thread],
                "state": state,
                "updated_at": at,
                "conversation_id": thread_ids[thread],
            }
        )
        if not queued:
            history_rows.append(
                {
                    "id": _id(at, n + 3, pick),
                    "account_id": account_id,
                    "message_id": message_id,
                    "state": state,
                    "created_at": at,
                }
            )
        last[thread] = {
            "id": message_id,
            "at": at,
            "preview": content,
            "direction": "in" if inbound else "out",
        }
    conversation_rows = [
        {
            "id": thread_ids[thread],
            "account_id": account_id,
            "device_id": device_id,
            "sim_key": 0,
            "contact": numbers[thread],
            "subscriber": phones.subscriber(numbers[thread]),
            "family": "sms",
            "display_name": f"Cliente {thread}" if thread % 5 == 0 else None,
            "last_message_id": last[thread]["id"],
            "last_message_at": last[thread]["at"],
            "last_preview": last[thread]["preview"],
            "last_direction": last[thread]["direction"],
            "unread_count": 0,
            "created_at": first_at[thread],
        }
        for thread in sorted(last, key=lambda t: first_at[t])
    ]
    await _insert(conn, Conversation.__table__, conversation_rows)  # type: ignore[arg-type]
    await _insert(conn, messages_table, message_rows)
    await _insert(conn, recipients_table, recipient_rows)
    await _insert(conn, history_table, history_rows)
    await conn.execute(text("ANALYZE"))  # the planner's statistics, as a year of use has them
    quiet = min(t for t in last if t != 0)
    return Filled(
        device_id=device_id,
        messages=messages,
        threads=len(last),
        busy_thread=thread_ids[0],
        busy_number=numbers[0],
        quiet_thread=thread_ids[quiet],
        quiet_number=numbers[quiet],
        some_message=message_rows[len(message_rows) // 2]["id"],
    )
