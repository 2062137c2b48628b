"""One subscriber per number: +52 1 55… and +52 55… are one person (kit.phones.subscriber).

Mexico dropped the mobile '1' after +52 in 2019; customers' systems hold both spellings. Opt-outs,
threads, filters and a send's own recipients compare subscribers, while every number is returned
as it was written."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from smsgate.app import create_app
from smsgate.kit import phones
from smsgate.storage import migrate
from smsgate.storage.db import Database
from tests.factories import pair_phone, send, signup
from tests.serving import own_database

NEW, OLD = "+525599999999", "+5215599999999"  # one subscriber, both spellings


def test_the_subscriber_key_and_its_spellings() -> None:
    assert phones.subscriber(OLD) == phones.subscriber(NEW) == NEW
    assert phones.spellings(OLD) == phones.spellings(NEW) == (NEW, OLD)
    # other countries, short codes, sender names and encrypted numbers are their own key
    for number in ("+14155550100", "+5215599", "89911", "BANCO", "gAAAAABl+521..."):
        assert phones.subscriber(number) == number
        assert phones.spellings(number) == (number,)


async def test_stop_from_one_spelling_blocks_sends_to_the_other(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    await phone.inbox([{"phoneNumber": NEW, "message": "BAJA", "id": "b1"}])
    blocked = (await send(user, phoneNumbers=[OLD], message="promo")).json()
    assert blocked["state"] == "failed"
    assert [(r["phoneNumber"], r["state"], r.get("error")) for r in blocked["recipients"]] == [
        (OLD, "failed", "opted_out")
    ]
    assert await phone.pull() == []  # no phone sees it
    # the list holds the subscriber once, as first written; a second STOP adds nothing
    await phone.inbox([{"phoneNumber": OLD, "message": "STOP", "id": "b2"}])
    listed = (await user.client.get("/api/opt-outs", headers=user.auth)).json()["data"]
    assert [o["phoneNumber"] for o in listed] == [NEW]
    # opting in from the other spelling (or removing either spelling) lifts it
    removed = await user.client.delete(f"/api/opt-outs/{OLD}", headers=user.auth)
    assert removed.status_code == 200, removed.text
    assert (await user.client.get("/api/opt-outs", headers=user.auth)).json()["data"] == []
    again = (await send(user, phoneNumbers=[OLD], message="bienvenido")).json()
    assert again["state"] == "processing"
    assert [m["phoneNumbers"] for m in await phone.pull()] == [[OLD]]


async def test_an_opt_out_added_by_hand_blocks_both_spellings(make_user) -> None:
    user = await make_user()
    added = await user.client.post("/api/opt-outs", json={"phoneNumber": OLD}, headers=user.auth)
    assert added.status_code == 201, added.text
    for number in (NEW, OLD):
        answer = (await send(user, phoneNumbers=[number], message="promo")).json()
        assert answer["recipients"][0]["error"] == "opted_out", number


async def test_a_reply_from_one_spelling_lands_in_the_thread_of_the_other(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    reminder = await send(
        user, phoneNumbers=[OLD], message="Su cita es mañana", deviceId=phone.device_id
    )
    assert reminder.status_code == 202, reminder.text
    await phone.inbox([{"phoneNumber": NEW, "message": "Confirmo", "id": "r1"}])
    threads = (await user.client.get("/api/conversations", headers=user.auth)).json()["data"]
    assert len(threads) == 1
    thread = threads[0]
    assert thread["contact"] == OLD  # as its first message wrote it
    assert thread["unreadCount"] == 1
    shown = (
        await user.client.get(f"/api/conversations/{thread['id']}/messages", headers=user.auth)
    ).json()["data"]
    assert [m["direction"] for m in shown] == ["in", "out"]


async def test_the_number_filter_finds_both_spellings(make_user) -> None:
    user = await make_user()
    ids = set()
    for number in (OLD, NEW):  # two sends, apart
        answer = await send(user, phoneNumbers=[number], message="hola")
        assert answer.status_code == 202, answer.text
        ids.add(answer.json()["id"])
    other = (await send(user, phoneNumbers=["+525511112222"], message="hola")).json()["id"]
    for number in (OLD, NEW, "55 9999 9999"):
        listed = await user.client.get(
            "/api/v1/messages", params={"phoneNumber": number}, headers=user.auth
        )
        assert listed.status_code == 200, listed.text
        found = {m["id"]: m["recipients"][0]["phoneNumber"] for m in listed.json()["data"]}
        assert set(found) == ids and other not in found, number
        assert sorted(found.values()) == sorted([OLD, NEW])  # each as it was written


async def test_a_send_listing_both_spellings_reaches_the_subscriber_once(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    answer = await send(user, phoneNumbers=[OLD, "+525511112222", NEW], message="hola")
    assert answer.status_code == 202, answer.text
    assert [r["phoneNumber"] for r in answer.json()["recipients"]] == [OLD, "+525511112222"]
    pulled = await phone.pull()
    assert [m["phoneNumbers"] for m in pulled] == [[OLD, "+525511112222"]]


async def test_the_migration_merges_a_subscribers_threads_and_opt_outs(settings, tmp_path) -> None:
    """A database written before 0016 holds one subscriber twice: two threads of one line (one
    per spelling) and two opt-outs. Upgrading merges them: one thread with every message, the
    unread counts summed; one opt-out, the older."""
    async with own_database(settings, tmp_path) as own:
        await asyncio.to_thread(migrate.upgrade, own)
        account_id, thread_id, reply_id = await _one_thread(own)
        await asyncio.to_thread(migrate.downgrade, own, "0015")
        await _split_as_before(own, account_id, thread_id, reply_id)
        await asyncio.to_thread(migrate.upgrade, own)
        database = Database(own)
        try:
            async with database.engine.connect() as conn:
                threads = (
                    await conn.execute(
                        text(
                            "SELECT id, contact, subscriber, unread_count FROM conversations "
                            "WHERE account_id = :a"
                        ),
                        {"a": account_id},
                    )
                ).all()
                members = (
                    await conn.execute(
                        text(
                            "SELECT DISTINCT conversation_id FROM message_recipients "
                            "WHERE account_id = :a"
                        ),
                        {"a": account_id},
                    )
                ).all()
                opt_outs = (
                    await conn.execute(
                        text("SELECT phone_number, subscriber FROM opt_outs WHERE account_id = :a"),
                        {"a": account_id},
                    )
                ).all()
        finally:
            await database.dispose()
        assert [tuple(t) for t in threads] == [(thread_id, NEW, NEW, 2)]
        assert [tuple(m) for m in members] == [(thread_id,)]
        assert [tuple(o) for o in opt_outs] == [(NEW, NEW)]


async def _one_thread(settings) -> tuple[str, str, str]:
    """Through the API: a received message from NEW, a reply pinned to the phone (one thread),
    NEW on the opt-out list."""
    app = create_app(settings)
    try:
        user = await signup(app)
        phone = await pair_phone(user)
        await phone.inbox([{"phoneNumber": NEW, "message": "hola", "id": "i1"}])
        reply = await send(user, phoneNumbers=[OLD], message="hola", deviceId=phone.device_id)
        assert reply.status_code == 202, reply.text
        added = await user.client.post(
            "/api/opt-outs", json={"phoneNumber": NEW}, headers=user.auth
        )
        assert added.status_code == 201, added.text
        threads = (await user.client.get("/api/conversations", headers=user.auth)).json()["data"]
        assert len(threads) == 1
        await user.client.aclose()
        return user.account_id, threads[0]["id"], reply.json()["id"]
    finally:
        await app.state.webhook_http.aclose()
        await app.state.send_writer.close()
        await app.state.reports.close()
        await app.state.db.dispose()


async def _split_as_before(settings, account_id: str, thread_id: str, reply_id: str) -> None:
    """What 0015's code would have written: the reply to OLD in a thread of its own (unread 1
    there, as if it had been a received message), and OLD opted out a second time."""
    columns = (
        "account_id, device_id, sim_key, family, display_name, archived_at, last_message_id, "
        "last_message_at, last_preview, last_direction, read_up_to_id, created_at"
    )
    database = Database(settings)
    try:
        async with database.engine.begin() as conn:
            await conn.execute(
                text(
                    f"INSERT INTO conversations (id, contact, unread_count, {columns}) "  # noqa: S608
                    f"SELECT :new, :old, 1, {columns} FROM conversations WHERE id = :id"
                ),
                {"new": "z" + thread_id[1:], "old": OLD, "id": thread_id},
            )
            await conn.execute(
                text("UPDATE message_recipients SET conversation_id = :new WHERE message_id = :m"),
                {"new": "z" + thread_id[1:], "m": reply_id},
            )
            await conn.execute(
                text(
                    "INSERT INTO opt_outs (id, account_id, phone_number, source, created_at) "
                    "SELECT :new, account_id, :old, source, created_at FROM opt_outs "
                    "WHERE account_id = :a"
                ),
                {"new": "z" + account_id[1:], "old": OLD, "a": account_id},
            )
    finally:
        await database.dispose()
