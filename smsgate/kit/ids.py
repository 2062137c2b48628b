"""25-character, time-ordered, cuid-style ids beginning with 'c'.

An id begins with the millisecond of its creation on the one clock (kit.clock), so a row's id
is never earlier than its `created_at` taken just before: a time bound on `created_at` is also
a bound on ids (`floor`), which an index in id order can serve."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime

from smsgate.kit import clock

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 25
_lock = threading.Lock()
_last_ms = 0
_offset_ms = 0  # the clock's test offset _last_ms was taken with
_counter = 0
_prefix = ""  # "c" and the base-36 milliseconds of _last_ms


_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # two base-36 digits per step
# one random base-36 digit per random byte: 252 of the 256 byte values, 7 for each digit; the
# other 4 are skipped (no bias)
_DIGIT_OF_BYTE = bytes(_ALPHABET[b % 36].encode()[0] if b < 252 else 0 for b in range(256))
_SKIPPED = bytes(range(252, 256))
_RANDOM_CHUNK = 12 * 512
_random = ""  # random base-36 digits, read from the OS 512 ids' worth at a time
_used = _RANDOM_CHUNK  # digits of _random already taken (all: none read yet)


def _base36(value: int, width: int) -> str:
    """`value` as `width` (even) base-36 digits, zero-padded."""
    pairs = []
    for _ in range(width // 2):
        value, rem = divmod(value, 1296)
        pairs.append(_PAIRS[rem])
    return "".join(reversed(pairs))


def _refill() -> None:
    global _random, _used
    digits = b""
    while len(digits) < _RANDOM_CHUNK:
        digits += os.urandom(_RANDOM_CHUNK).translate(_DIGIT_OF_BYTE, _SKIPPED)
    _random, _used = digits[:_RANDOM_CHUNK].decode("ascii"), 0


def new_id() -> str:
    """'c' + 8 chars of milliseconds + 4 chars of per-ms counter + 12 random chars.

    Lexical order follows creation time (within one process, strictly), so cursors can walk ids.
    """
    global _last_ms, _offset_ms, _counter, _prefix, _used
    with _lock:
        now = int(time.time() * 1000) + clock.offset_ms
        if now <= _last_ms and _offset_ms == clock.offset_ms:
            _counter += 1
            if _counter >= 36**4:  # more than 1.6M ids in one ms: borrow the next millisecond
                _last_ms += 1
                _counter = 0
                _prefix = "c" + _base36(_last_ms, 8)
        else:  # a new millisecond (or a test moved the clock: ids follow it, back too)
            _last_ms, _offset_ms = now, clock.offset_ms
            _counter = 0
            _prefix = "c" + _base36(now, 8)
        counter = _counter
        if _used + 12 > _RANDOM_CHUNK:
            _refill()
        start = _used
        _used += 12
        return (
            _prefix + _PAIRS[counter // 1296] + _PAIRS[counter % 1296] + _random[start : start + 12]
        )


def floor(at: datetime) -> str:
    """The smallest id of the millisecond `at` falls in: every row created at `at` or later
    has an id at least this."""
    ms = int(clock.as_utc(at).timestamp() * 1000)
    return "c" + _base36(max(ms, 0), 8) + "0" * 16


def is_id(value: str) -> bool:
    return len(value) == ID_LENGTH and value[0] == "c" and all(ch in _ALPHABET for ch in value)
