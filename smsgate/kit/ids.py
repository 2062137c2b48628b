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


def _base36(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 36)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id() -> str:
    """'c' + 8 chars of milliseconds + 4 chars of per-ms counter + 12 random chars.

    Lexical order follows creation time (within one process, strictly), so cursors can walk ids.
    """
    global _last_ms, _counter
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
    rand = int.from_bytes(os.urandom(8)) % 36**12
    return "c" + _base36(now, 8) + _base36(counter, 4) + _base36(rand, 12)


def is_id(value: str) -> bool:
    return len(value) == ID_LENGTH and value[0] == "c" and all(ch in _ALPHABET for ch in value)
