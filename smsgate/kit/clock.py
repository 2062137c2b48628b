"""The one clock: UTC, three-digit ISO-8601 output, and a test hook to move time."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import overload

from smsgate.kit.i18n import t

_offset = timedelta(0)
# the same, in whole milliseconds: ids carry the time of now() (kit.ids), test offset included
offset_ms = 0


def now() -> datetime:
    """Aware UTC now, truncated to milliseconds (what we store and show)."""
    value = datetime.now(UTC) + _offset
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def advance(delta: timedelta) -> None:
    """Tests move time forward (or back) for every caller of now()."""
    global _offset, offset_ms
    _offset += delta
    offset_ms = _offset // timedelta(milliseconds=1)


def reset() -> None:
    global _offset, offset_ms
    _offset = timedelta(0)
    offset_ms = 0


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: None) -> None: ...
@overload
def iso(value: datetime | None) -> str | None: ...
def iso(value: datetime | None) -> str | None:
    """2026-04-24T10:00:00.000Z: exactly three fractional digits and Z."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" -> "Z"


def as_utc(value: datetime) -> datetime:
    """Treat a naive datetime as UTC; convert an aware one to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_zoned(value: object) -> datetime | None:
    """A phone's ISO-8601 time with a zone (`...+01:00` or `Z`), in UTC to the millisecond;
    None for anything else (a missing or zone-less time is not guessed at)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return as_utc(parsed).replace(microsecond=parsed.microsecond // 1000 * 1000)


def zoned_filter(value: datetime | None, field: str) -> datetime | None:
    """A query's time bound: must carry a zone (a naive time is ambiguous), returned in UTC."""
    from smsgate.errors import bad_request

    if value is None:
        return None
    if value.tzinfo is None:
        raise bad_request(
            t("{field}: needs a time zone, such as 2026-01-01T00:00:00Z", field=field), field=field
        )
    return as_utc(value)


async def wait(event: asyncio.Event | None, seconds: float) -> bool:
    """Wait up to `seconds` (real time) for `event`; True when it was set. With no event, a
    plain sleep: loops use it to pause between rounds and still stop at once when asked."""
    if event is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    return event.is_set()
