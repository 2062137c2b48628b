"""The engine, the session factory and the request-edge transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Table, event, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.sql.dml import Insert

from smsgate.config import Settings
from smsgate.errors import ApiError, storage_is_full
from smsgate.storage import onehop, sqlitelock

AFTER_COMMIT = "after_commit"
WROTE = "wrote"  # session.info: a change was flushed in this transaction
DATABASE = "database"  # session.info: the Database the session belongs to
# An execution option: the connection's transactions only read (Database.reading)
READ_ONLY = "smsgate_read_only"


def asyncpg_dsn(settings: Settings) -> str:
    """The database URL as asyncpg itself takes it (for connections made without SQLAlchemy)."""
    url = make_url(settings.database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def make_engine(settings: Settings, *, foreign_keys: bool = True) -> AsyncEngine:
    """The engine; `foreign_keys=False` is for SQLite migrations alone, which rebuild tables
    (a table's copy is dropped: with the keys on, that would fire every ON DELETE of the rows
    that refer to it) and check the keys themselves when done (migrations/env.py)."""
    if settings.is_sqlite:
        url = make_url(settings.database_url)
        arguments, options = url.get_dialect()().create_connect_args(url)

        async def connect() -> onehop.Connection:
            return await onehop.connect(*arguments, **options)

        # One connection per process: SQLite has one writer anyway, and a queue in front of a
        # single connection gives fair ordering and a short tail instead of busy-wait retries.
        # Its statements make one trip each to the driver's thread (storage/onehop.py).
        engine = create_async_engine(
            settings.database_url,
            async_creator=connect,
            poolclass=AsyncAdaptedQueuePool,
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
        )
        _configure_sqlite(engine, foreign_keys)
        _refuse_writes_when_reading(engine)
        return engine
    connect_args: dict[str, Any] = {}
    if settings.database_schema:
        connect_args["server_settings"] = {"search_path": settings.database_schema}
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=True,
        connect_args=connect_args,
    )
    _refuse_writes_when_reading(engine)
    return engine


class WriteWhileReading(RuntimeError):
    """A statement that writes was run in a reading session (Database.reading, ReadSession)."""


def _refuse_writes_when_reading(engine: AsyncEngine) -> None:
    """A reading session's work is never committed, and on SQLite its transaction took no
    lock: an INSERT, UPDATE or DELETE there is a bug, refused loudly rather than lost."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _check(
        conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        writes = context is not None and (context.isinsert or context.isupdate or context.isdelete)
        if writes and conn.get_execution_options().get(READ_ONLY, False):
            raise WriteWhileReading(f"a reading session may not write: {statement[:80]}")


def _configure_sqlite(engine: AsyncEngine, foreign_keys: bool = True) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions, so SAVEPOINT works.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute(f"PRAGMA busy_timeout={sqlitelock.BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: a read-then-write transaction can never
        # fail half-way with SQLITE_BUSY when another process (the CLI, a worker) writes.
        # A transaction that only reads begins DEFERRED: in WAL mode it takes no lock at all,
        # so the send writer (and every other writer) never waits behind it, however many
        # event-loop turns it spans.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class _Session(Session):
    """A session that notes in its `info` when it has flushed a change (`Database.wrote`)."""


@event.listens_for(_Session, "after_flush")
def _flushed(session: Session, _context: Any) -> None:
    session.info[WROTE] = True


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings)
        self.sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=_Session, info={DATABASE: self}
        )
        # the last write failed because the storage is full (SQLite's disk, PostgreSQL's
        # 53100); the next write that commits clears it. /health/ready answers 503 meanwhile.
        self.storage_full = False
        # the engine for connections that only read (no lock on SQLite; see `reading`)
        self.read_engine = self.engine.execution_options(**{READ_ONLY: True})
        # never flushed: an object a look-up touched (a key's lastUsedAt) stays pending, for the
        # caller to see in `session.dirty`, instead of being written by the next query
        self._readers = async_sessionmaker(
            self.read_engine,
            expire_on_commit=False,
            autoflush=False,
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def ping(self) -> None:
        async with self.reading() as session:
            await session.execute(text("SELECT 1"))

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for work that only reads. On SQLite it takes no lock, so it never holds
        up a writer: the background polls that usually find nothing to do (webhook deliveries
        due, WhatsApp lines, scheduled sends) look with it first, and `ReadSession` routes read
        with it. Nothing is ever committed through it, and an INSERT, UPDATE or DELETE raises
        `WriteWhileReading`."""
        async with self._readers() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()

    def failed(self, exc: BaseException) -> None:
        """A transaction failed with `exc`: note a full storage (for /health/ready)."""
        if storage_is_full(exc):
            self.storage_full = True

    def wrote(self) -> None:
        """A write committed: the storage takes writes again."""
        self.storage_full = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commit if the body returns, roll back if it raises, except for an
        ApiError raised with keep_changes (a failed login that must be counted), which commits
        what was written before it (as the request edge does)."""
        async with self.sessions() as session:
            try:
                yield session
            except ApiError as exc:
                if exc.keep_changes:
                    await commit(session)
                else:
                    await session.rollback()
                raise
            except BaseException as exc:
                self.failed(exc)
                await session.rollback()
                raise
            await commit(session)


def insert_ignoring_conflicts(table: Table, dialect: str, *columns: str) -> Insert:
    """INSERT ... ON CONFLICT (columns) DO NOTHING for either database."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(columns))
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(columns))


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request edge: the only place (besides jobs) that commits.

    An ApiError raised with keep_changes (a failed login that must be counted) commits what the
    request wrote before it; any other error rolls everything back (Database.transaction).
    """
    database: Database = request.app.state.db
    async with database.transaction() as session:
        yield session


async def commit(session: AsyncSession) -> None:
    """Commit and run the after-commit callbacks."""
    await session.commit()
    if session.info.pop(WROTE, False):
        session.info[DATABASE].wrote()
    for callback in session.info.pop(AFTER_COMMIT, []):
        callback()


async def rollback(session: AsyncSession) -> None:
    """Undo the transaction's work so far, with the after-commit callbacks it registered; the
    request may go on in a new transaction."""
    await session.rollback()
    session.info.pop(AFTER_COMMIT, None)


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run `callback` once this request's transaction has committed (e.g. clear a cache)."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


DbSession = Annotated[AsyncSession, Depends(request_session, scope="function")]


async def reading_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request edge for routes that only read (Database.reading): on SQLite no lock, so a
    client polling a message's state never holds up the send writer."""
    database: Database = request.app.state.db
    async with database.reading() as session:
        yield session
        if session.new or session.dirty or session.deleted:
            # a change to an object would be lost without a word: as loud as a written row
            raise WriteWhileReading(f"a reading route changed objects: {request.url.path}")


ReadSession = Annotated[AsyncSession, Depends(reading_session, scope="function")]
