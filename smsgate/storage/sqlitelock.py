"""Waiting for SQLite's write lock in small steps.

SQLite's own busy handler (`busy_timeout`) sleeps 1, 2, 5, 10, 15, 20, 25… ms between its
attempts: a lock another connection frees after 0.3 ms costs the waiter 1 ms, one freed after
4 ms costs it 8. On this server the lock changes hands all the time and briefly (the send
writer's batches, phones' reports, received messages, each a few milliseconds), so every
`BEGIN IMMEDIATE` waits here instead: it tries again after 0.1 ms, then at most every 2 ms,
for as long as `busy_timeout` would have waited. Only the BEGIN waits this way; every other
statement keeps the connection's `busy_timeout` (in WAL mode they rarely meet a lock at all).
"""

from __future__ import annotations

import sqlite3
import time

BUSY_TIMEOUT_MS = 30_000  # every connection's `busy_timeout`: how long any statement waits
FIRST_PAUSE = 0.0001
LONGEST_PAUSE = 0.002


def is_busy(exc: sqlite3.Error) -> bool:
    """The lock is held elsewhere (SQLITE_BUSY, or one of its extended codes)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


def begin_immediate(
    connection: sqlite3.Connection, patience: float = BUSY_TIMEOUT_MS / 1000
) -> int:
    """BEGIN IMMEDIATE on `connection`, waiting up to `patience` seconds for the write lock.
    Returns how many times it found the lock held (0: at once). Raises SQLite's
    "database is locked" error if the lock is still held after `patience`."""
    connection.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + patience
        pause = FIRST_PAUSE
        waits = 0
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                return waits
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() >= deadline:
                    raise
            waits += 1
            time.sleep(pause)
            pause = min(pause * 1.5, LONGEST_PAUSE)
    finally:
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
