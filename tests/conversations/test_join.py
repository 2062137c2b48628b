"""conversations.join when another transaction made the thread first (on PostgreSQL, between
this join's look-up and its insert): the thread that exists wins and is updated like any other;
a thread the join makes itself is inserted whole."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from smsgate.conversations import joining
from smsgate.messages.models import messages_table, recipients_table
from tests.factories import pair_phone, send

X = "+5215555555555"


async def _threads_with(user: Any, contact: str) -> list[dict[str, Any]]:
    listed = await user.client.get("/api/conversations", headers=user.auth)
    assert listed.status_code == 200, listed.text
    return [t for t in listed.json()["data"] if t["contact"] == contact]


async def test_a_thread_made_meanwhile_by_another_transaction_is_joined_and_updated(
    app: FastAPI, make_user, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    await phone.inbox([{"phoneNumber": X, "message": "hola", "id": "first"}])
    (existing,) = await _threads_with(user, X)
    sent = await send(user, phoneNumbers=[X], message="respuesta tardía")  # no device: no thread
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["id"]

    looked_up = joining._threads
    calls = 0

    async def first_sees_nothing(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        return {} if calls == 1 else await looked_up(*args)

    monkeypatch.setattr(joining, "_threads", first_sees_nothing)
    database = app.state.db
    async with database.transaction() as session:
        joinings = await joining.outbound_joinings(session, [message_id])
        chosen = await joining.join(session, phone.device_id, joinings)
    assert calls == 2  # the insert met the thread that exists, which was then looked up
    assert set(chosen.values()) == {existing["id"]}

    (thread,) = await _threads_with(user, X)  # no second thread
    assert thread["id"] == existing["id"]
    assert thread["lastMessageId"] == message_id
    assert thread["lastMessagePreview"] == "respuesta tardía"
    assert thread["lastMessageDirection"] == "out"
    assert thread["unreadCount"] == existing["unreadCount"] == 1
    r = recipients_table
    async with database.reading() as session:
        joined = await session.execute(
            select(r.c.conversation_id).where(r.c.message_id == message_id)
        )
        assert joined.scalar_one() == existing["id"]


async def test_a_new_thread_is_inserted_with_its_name_unread_count_and_last_message(
    app: FastAPI, make_user
) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    await phone.inbox(
        [
            {"phoneNumber": X, "message": "uno", "id": "a"},
            {"phoneNumber": X, "message": "dos", "id": "b"},
        ]
    )
    (thread,) = await _threads_with(user, X)
    m = messages_table
    async with app.state.db.reading() as session:
        newest = await session.execute(
            select(m.c.id).where(m.c.account_id == user.account_id).order_by(m.c.id.desc())
        )
        newest_id = newest.scalars().first()
    assert thread["unreadCount"] == 2
    assert thread["lastMessageId"] == newest_id
    assert thread["lastMessagePreview"] == "dos"
    assert thread["lastMessageDirection"] == "in"
    assert thread["archived"] is False
