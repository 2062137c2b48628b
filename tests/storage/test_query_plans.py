"""The read paths a year of traffic made slow (#32) are served from an index, on both
databases: their plans are read here, and a plan that scans the messages or recipients table
fails. (SQLite's planner, with no statistics, plans as for big tables; PostgreSQL is told not to
scan sequentially where it could avoid it, so a plan that still does has no index to use.)"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Select, select

from smsgate.conversations.service import thread_query
from smsgate.messages import dispatch
from smsgate.messages.models import messages_table as m
from smsgate.messages.service import MessageFilter, by_state_query, messages_query

NOW = datetime(2026, 12, 7, tzinfo=UTC)
CASES: dict[str, tuple[Select, str]] = {
    # the number filter: from the recipients' (account, number) index, never the account's
    # messages one by one
    "number": (
        messages_query("cA", MessageFilter(phone_number="+525511112222"), None, 51),
        "ix_message_recipients_account_id_phone_number",
    ),
    # a thread's page: from (conversation, message), in its order
    "thread": (
        thread_query("cT", "cA", None, 51),
        "ix_message_recipients_conversation_id_message_id",
    ),
    # a time window: the account's messages in id order between the window's ids, never every
    # message since the newest
    "window": (
        messages_query(
            "cA",
            MessageFilter(since=NOW - timedelta(days=46), until=NOW - timedelta(days=45)),
            None,
            51,
        ),
        # the index and, on both databases, the id range it is searched with
        r"ix_messages_account_id_id.*(id>\? AND id<\?|\n.*Index Cond: .*id\)::text >= .*id\)::text < )",
    ),
    # the overview's "today" by state: today's ids only
    "today": (
        by_state_query("cA", NOW - timedelta(hours=6)),
        r"ix_messages_account_id_id.*(id>\?|\n.*Index Cond: .*id\)::text >= )",
    ),
    # the periodic jobs: only the messages still processing
    "expired": (dispatch.unacknowledged(m.c.valid_until < NOW, 500), "ix_messages_processing"),
    "stalled": (
        select(m.c.id).where(dispatch._stalled(("sms",), NOW)).limit(100),
        "ix_messages_processing",
    ),
}


async def _plan(app, statement: Select) -> list[str]:
    async with app.state.db.engine.connect() as conn:
        compiled = statement.compile(
            dialect=conn.dialect, compile_kwargs={"render_postcompile": True}
        )
        values = tuple(compiled.params[name] for name in compiled.positiontup or ())
        if conn.dialect.name == "postgresql":
            await conn.exec_driver_sql("SET enable_seqscan = off")
            rows = (await conn.exec_driver_sql(f"EXPLAIN {compiled}", values)).all()
            await conn.rollback()
        else:
            rows = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", values)).all()
        return [str(row[-1]) for row in rows]


@pytest.mark.parametrize("name", list(CASES))
async def test_the_read_path_walks_an_index(app, name: str) -> None:
    statement, index = CASES[name]
    plan = await _plan(app, statement)
    text = "\n".join(plan)
    scans = re.compile(
        r"^SCAN (messages|message_recipients)\b|Seq Scan on (messages|message_recipients)\b"
    )
    assert not any(scans.search(line.strip()) for line in plan), text
    assert re.search(index, text), text
