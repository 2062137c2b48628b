"""BEGIN IMMEDIATE waits for SQLite's write lock in small steps (storage/sqlitelock.py), for as
long as busy_timeout would, and leaves the connection's busy_timeout as it was."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from smsgate.storage import sqlitelock


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA busy_timeout={sqlitelock.BUSY_TIMEOUT_MS}")
    return connection


def _busy_timeout(connection: sqlite3.Connection) -> int:
    value: int = connection.execute("PRAGMA busy_timeout").fetchone()[0]
    return value


def _holds_lock(connection: sqlite3.Connection) -> bool:
    return connection.in_transaction


def test_a_free_lock_is_taken_at_once(tmp_path: Path) -> None:
    connection = _connect(tmp_path / "db.sqlite")
    assert sqlitelock.begin_immediate(connection) == 0
    assert _holds_lock(connection)
    other = _connect(tmp_path / "db.sqlite")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        sqlitelock.begin_immediate(other, patience=0.01)
    connection.execute("ROLLBACK")
    assert _busy_timeout(connection) == _busy_timeout(other) == sqlitelock.BUSY_TIMEOUT_MS


def test_it_waits_for_a_lock_released_meanwhile(tmp_path: Path) -> None:
    holder = _connect(tmp_path / "db.sqlite")
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Timer(0.05, lambda: holder.execute("ROLLBACK"))
    released.start()
    waiter = _connect(tmp_path / "db.sqlite")
    try:
        waits = sqlitelock.begin_immediate(waiter)
        assert waits > 0  # it found the lock held, and then had it
        assert _holds_lock(waiter)
        waiter.execute("CREATE TABLE t (x)")
        waiter.execute("COMMIT")
    finally:
        released.join()
    assert _busy_timeout(waiter) == sqlitelock.BUSY_TIMEOUT_MS


def test_a_lock_held_past_its_patience_is_the_usual_error(tmp_path: Path) -> None:
    holder = _connect(tmp_path / "db.sqlite")
    holder.execute("BEGIN IMMEDIATE")
    waiter = _connect(tmp_path / "db.sqlite")
    with pytest.raises(sqlite3.OperationalError, match="database is locked") as raised:
        sqlitelock.begin_immediate(waiter, patience=0.05)
    assert sqlitelock.is_busy(raised.value)
    assert not _holds_lock(waiter)
    assert _busy_timeout(waiter) == sqlitelock.BUSY_TIMEOUT_MS
    holder.execute("ROLLBACK")


def test_other_errors_are_raised_at_once(tmp_path: Path) -> None:
    connection = _connect(tmp_path / "db.sqlite")
    connection.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="within a transaction") as raised:
        sqlitelock.begin_immediate(connection, patience=60)  # would hang if it were retried
    assert not sqlitelock.is_busy(raised.value)
    connection.execute("ROLLBACK")
    assert _busy_timeout(connection) == sqlitelock.BUSY_TIMEOUT_MS
