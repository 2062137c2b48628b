"""25-character, time-ordered, cuid-style ids beginning with 'c'."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 25
_lock = threading.Lock()
_last_ms = 0
_counter = 0


_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # two base-36 digits per step
_RANDOM_CHUNK = 8 * 512
_random = b""
_used = _RANDOM_CHUNK  # bytes of _random already taken


def _base36(value: int, width: int) -> str:
    """`value` as `width` (even) base-36 digits, zero-padded."""
    pairs = []
    for _ in range(width // 2):
        value, rem = divmod(value, 1296)
        pairs.append(_PAIRS[rem])
    return "".join(reversed(pairs))


def new_id() -> str:
    """'c' + 8 chars of milliseconds + 4 chars of per-ms counter + 12 random chars.

    Lexical order follows creation time (within one process, strictly), so cursors can walk ids.
    """
    global _last_ms, _counter, _random, _used
    with _lock:
        now = int(time.time() * 1000)
        if now <= _last_ms:
            _counter += 1
            if _counter >= 36**4:  # more than 1.6M ids in one ms: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            now = _last_ms
        else:
            _last_ms = now
            _counter = 0
        counter = _counter
        if _used >= _RANDOM_CHUNK:  # the OS's randomness, read 512 ids' worth at a time
            _random, _used = os.urandom(_RANDOM_CHUNK), 0
        rand = int.from_bytes(_random[_used : _used + 8]) % 36**12
        _used += 8
    return "c" + _base36((now * 36**4 + counter) * 36**12 + rand, 24)


def is_id(value: str) -> bool:
    return len(value) == ID_LENGTH and value[0] == "c" and all(ch in _ALPHABET for ch in value)
