"""The read paths a year of traffic made slow (#32) are served from an index, on both
databases: their plans are read here on a database of their own, filled with a year-old
install's rows (bench/fill.py) and analysed as such, and a plan that scans the messages or
recipients table, or does without the index meant for it, fails."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

import pytest
from sqlalchemy import Select, Table, insert, select

from bench.fill import Filled, fill
from smsgate.accounts.models import Account
from smsgate.config import Settings
from smsgate.conversations.service import list_query, thread_query
from smsgate.kit import clock
from smsgate.kit.ids import new_id
from smsgate.messages import sweeps
from smsgate.messages.models import messages_table as m
from smsgate.messages.queries import MessageFilter, by_state_query, messages_query, queue_query
from smsgate.storage import migrate
from smsgate.storage.db import Database
from smsgate.worker.retention import old_messages
from tests.conftest import TEST_DATABASE_URL
from tests.serving import pg_schema

MESSAGES = 20_000
THREADS = 20_000  # a shop with many customers, most written to once or twice


@dataclass
class Year:
    database: Database
    account_id: str
    filled: Filled


@pytest.fixture(scope="module")
def year_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A database of its own (the suite's is shared by every test), migrated."""
    schema = f"plans_{secrets.token_hex(4)}" if TEST_DATABASE_URL else ""
    if schema:
        pg_schema(TEST_DATABASE_URL, schema, create=True)
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("plans"),
        database_url=TEST_DATABASE_URL,
        database_schema=schema,
        secret_key="plans-" + secrets.token_hex(16),
    ).resolved()
    migrate.upgrade(settings)
    yield settings
    if schema:
        pg_schema(TEST_DATABASE_URL, schema, create=False)


@pytest.fixture(scope="module")
async def year(year_settings: Settings) -> AsyncIterator[Year]:
    database = Database(year_settings)
    account_id = new_id()
    async with database.engine.begin() as conn:
        await conn.execute(
            insert(cast(Table, Account.__table__)).values(
                id=account_id, email="plans@example.com", password_hash="-", settings={}
            )
        )
        filled = await fill(conn, account_id, messages=MESSAGES, threads=THREADS)
    yield Year(database, account_id, filled)
    await database.dispose()


def _window(a: str) -> Select:
    now = clock.now()
    window = MessageFilter(since=now - timedelta(days=46), until=now - timedelta(days=45))
    return messages_query(a, window, None, 51)


def _search(a: str, words: str) -> Select:
    return list_query(a, limit=51, cursor=None, unread=False, query=words, archived=False)


SEARCH_INDEX = (
    r"(?s)(?=.*conversations_search VIRTUAL TABLE)(?=.*SEARCH conversations USING INTEGER PRIMARY"
    r" KEY)|Bitmap Index Scan on ix_conversations_search"
)
CASES: dict[str, tuple[Callable[[str, Filled], Select], str]] = {
    # the number filter: from the recipients' (account, number) index, never the account's
    # messages one by one
    "number": (
        lambda a, f: messages_query(a, MessageFilter(phone_number=f.quiet_number), None, 51),
        "ix_message_recipients_account_number_message",
    ),
    # a thread's page: from (conversation, message), in its order; a quiet one and a busy one
    "busy number": (
        lambda a, f: messages_query(a, MessageFilter(phone_number=f.busy_number), None, 51),
        "ix_message_recipients_account_number_message",
    ),
    "thread": (
        lambda a, f: thread_query(f.quiet_thread, a, None, 51),
        "ix_message_recipients_conversation_id_message_id",
    ),
    "busy thread": (
        lambda a, f: thread_query(f.busy_thread, a, None, 51),
        "ix_message_recipients_conversation_id_message_id",
    ),
    # a time window: the account's messages in id order between the window's ids, never every
    # message since the newest
    "window": (
        lambda a, f: _window(a),
        # the index and, on both databases, the id range it is searched with
        r"(ix_messages_account_id_id|pk_messages).*"
        r"(id>\? AND id<\?|\n.*Index Cond: .*id\)::text >= .*id\)::text < )",
    ),
    # the overview's "today" by state: today's ids only
    "today": (
        lambda a, f: by_state_query(a, clock.now() - timedelta(hours=6)),
        r"(ix_messages_account_id_id|pk_messages).*(id>\?|\n.*Index Cond: .*id\)::text >= )",
    ),
    # the periodic jobs: only the messages still processing
    "expired": (
        lambda a, f: sweeps.unacknowledged(m.c.valid_until < clock.now(), 500),
        "ix_messages_processing|ix_messages_queue .*state=",
    ),
    "stalled": (
        lambda a, f: select(m.c.id).where(sweeps._stalled(("sms",), clock.now())).limit(100),
        "ix_messages_processing",
    ),
    # retention's walk: the next batch of old messages, in id order
    "retention": (
        lambda a, f: old_messages(f.some_message, clock.now() - timedelta(days=30)),
        "pk_messages|sqlite_autoindex_messages_1",
    ),
    # conversation search: from the trigram index (an FTS5 table on SQLite, pg_trgm on
    # PostgreSQL), never every thread of the account
    "search": (lambda a, f: _search(a, f.quiet_number[-6:-2]), SEARCH_INDEX),
    "search, nothing found": (lambda a, f: _search(a, "zzzq"), SEARCH_INDEX),
    # /metrics' queues: the messages still processing, however many were ever sent
    "queue": (lambda a, f: queue_query(), "ix_messages_processing|ix_messages_queue .*state="),
}


async def _plan(database: Database, statement: Select) -> list[str]:
    async with database.engine.connect() as conn:
        compiled = statement.compile(
            dialect=conn.dialect, compile_kwargs={"render_postcompile": True}
        )
        values = tuple(compiled.params[name] for name in compiled.positiontup or ())
        if conn.dialect.name == "postgresql":
            rows = (await conn.exec_driver_sql(f"EXPLAIN {compiled}", values)).all()
        else:
            rows = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", values)).all()
        return [str(row[-1]) for row in rows]


@pytest.mark.parametrize("name", list(CASES))
async def test_the_read_path_walks_an_index(year: Year, name: str) -> None:
    build, index = CASES[name]
    plan = await _plan(year.database, build(year.account_id, year.filled))
    text = "\n".join(plan)
    scans = re.compile(
        r"^SCAN (messages|message_recipients|conversations)\b"
        r"|Seq Scan on (messages|message_recipients|conversations)\b"
    )
    assert not any(scans.search(line.strip()) for line in plan), text
    assert re.search(index, text), text
