"""Waiting for SQLite's write lock in small steps.

SQLite's own busy handler (`busy_timeout`) sleeps 1, 2, 5, 10, 15, 20, 25… ms between its
attempts: a lock another connection frees after 0.3 ms costs the waiter 1 ms, one freed after
4 ms costs it 8. The send writer's process (storage/rawsqlite.py) takes the lock for every batch,
and between its batches the API process takes it for a few milliseconds at a time (phones'
reports, received messages, dashboard actions), so the writer's `BEGIN IMMEDIATE` waits here
instead: it tries again after 0.1 ms, then at most every 2 ms, for as long as `busy_timeout`
would have waited (bench/lock_wait.py). Only the BEGIN waits this way; every other statement
keeps the connection's `busy_timeout`.

The API process's own connection keeps SQLite's handler: its statements run in a thread that
shares the interpreter lock with the event loop, and the two extra statements here would each
hand that lock back to a busy loop (a wait of up to the 5 ms switch interval), more than its
waits for the write lock cost (short: the writer's batches are; p99 about 1 ms in the bench).
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
