"""Threads, unread counts, replies, opt-outs and the inbox."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from tests.factories import pair_phone, send

X, Y = "+5215512345678", "+5215587654321"


async def _threads(user, **params) -> list[dict]:
    resp = await user.client.get("/api/conversations", params=params, headers=user.auth)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


async def test_threads_per_line_and_contact(make_user) -> None:
    user = await make_user()
    a, b = await pair_phone(user, name="dual-sim"), await pair_phone(user, name="b")
    await a.inbox(
        [
            {"phoneNumber": X, "message": "hola por sim 1", "simNumber": 1, "id": "1"},
            {"phoneNumber": X, "message": "hola por sim 2", "simNumber": 2, "id": "2"},
            {"phoneNumber": Y, "message": "soy Y", "simNumber": 1, "id": "3"},
        ]
    )
    await b.inbox([{"phoneNumber": X, "message": "hola a B", "id": "4"}])
    pinned = (
        await send(
            user, phoneNumbers=[X], message="respuesta sim 1", deviceId=a.device_id, simNumber=1
        )
    ).json()
    free = (await send(user, phoneNumbers=[Y], message="para Y", simNumber=1)).json()
    pulled = await a.pull()
    assert {m["id"] for m in pulled} == {pinned["id"], free["id"]}
    threads = await _threads(user)
    keys = {(t["deviceId"], t["simNumber"], t["contact"]) for t in threads}
    assert keys == {
        (a.device_id, 1, X),
        (a.device_id, 2, X),
        (b.device_id, None, X),
        (a.device_id, 1, Y),
    }
    by_key = {(t["deviceId"], t["simNumber"], t["contact"]): t for t in threads}
    a1x = by_key[(a.device_id, 1, X)]
    assert a1x["lastMessagePreview"] == "respuesta sim 1" and a1x["lastMessageDirection"] == "out"
    assert a1x["unreadCount"] == 1 and a1x["channel"] == "sms"
    messages = (
        await user.client.get(f"/api/conversations/{a1x['id']}/messages", headers=user.auth)
    ).json()["data"]
    assert [m["message"] for m in messages] == ["respuesta sim 1", "hola por sim 1"]
    assert [m["direction"] for m in messages] == ["out", "in"]
    a1y = by_key[(a.device_id, 1, Y)]
    y_messages = (
        await user.client.get(f"/api/conversations/{a1y['id']}/messages", headers=user.auth)
    ).json()["data"]
    assert y_messages[0]["id"] == free["id"]


async def test_a_broadcast_joins_one_thread_per_recipient(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    msg = (await send(user, phoneNumbers=[X, Y], message="aviso")).json()
    await phone.pull()
    threads = await _threads(user)
    assert {t["contact"] for t in threads} == {X, Y}
    for thread in threads:
        shown = (
            await user.client.get(f"/api/conversations/{thread['id']}/messages", headers=user.auth)
        ).json()["data"]
        assert [m["id"] for m in shown] == [msg["id"]]
        assert [r["phoneNumber"] for r in shown[0]["recipients"]] == [thread["contact"]]


async def test_concurrent_sends_to_a_device_are_in_their_threads_when_answered(make_user) -> None:
    """Sends pinned to a device join their threads in the writer's batch, before the 202: 40
    at once to 3 contacts (one with a thread already, two new; one send to two of them) leave
    one thread per contact, each holding its sends, the newest as its last message."""
    user = await make_user()
    phone = await pair_phone(user)
    z = "+5215511112222"
    await phone.inbox([{"phoneNumber": X, "message": "hola", "id": "in-1"}])
    bodies = [{"phoneNumbers": [(X, Y, z)[i % 3]], "message": f"envío {i}"} for i in range(39)]
    bodies.append({"phoneNumbers": [Y, z], "message": "para los dos"})
    answers = await asyncio.gather(
        *(send(user, deviceId=phone.device_id, **body) for body in bodies)
    )
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    sent = [a.json() for a in answers]
    threads = {t["contact"]: t for t in await _threads(user)}  # read at once: no phone pulled
    assert set(threads) == {X, Y, z}
    for contact, thread in threads.items():
        ids = [m["id"] for m in sent if contact in {r["phoneNumber"] for r in m["recipients"]}]
        assert thread["deviceId"] == phone.device_id and thread["lastMessageDirection"] == "out"
        assert thread["lastMessageId"] == max(ids)
        shown = (
            await user.client.get(
                f"/api/conversations/{thread['id']}/messages",
                params={"limit": 100},
                headers=user.auth,
            )
        ).json()["data"]
        assert sorted(m["id"] for m in shown if m["direction"] == "out") == sorted(ids)


async def test_a_thread_with_an_unknown_sim_adopts_the_sim_once_known(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    await phone.inbox([{"phoneNumber": X, "message": "sin SIM", "id": "u1"}])
    assert [t["simNumber"] for t in await _threads(user)] == [None]
    pinned = await send(
        user, phoneNumbers=[X], message="por la SIM 2", deviceId=phone.device_id, simNumber=2
    )
    threads = await _threads(user)
    assert [(t["simNumber"], t["lastMessageId"]) for t in threads] == [(2, pinned.json()["id"])]
    # the other SIM gets a thread of its own; a message with no SIM joins the latest thread
    await phone.inbox([{"phoneNumber": X, "message": "por la SIM 1", "simNumber": 1, "id": "u2"}])
    await phone.inbox([{"phoneNumber": X, "message": "otra vez sin SIM", "id": "u3"}])
    by_sim = {t["simNumber"]: t for t in await _threads(user)}
    assert set(by_sim) == {1, 2}
    assert by_sim[1]["lastMessagePreview"] == "otra vez sin SIM"
    assert by_sim[1]["unreadCount"] == 2 and by_sim[2]["unreadCount"] == 1


async def test_a_received_message_s_numbers_out_of_range_are_400_and_store_nothing(
    make_user,
) -> None:
    """Found by the API fuzzer: a port past the database's integers failed the request with a
    500. The SIM (1 to 3) and the data port (1 to 65535) are checked, naming the field."""
    user = await make_user()
    phone = await pair_phone(user)
    auth = {"Authorization": f"Bearer {phone.token}"}
    for extra, field in (
        ({"port": 2**70}, "messages[0].port"),
        ({"port": 0}, "messages[0].port"),
        ({"simNumber": 4}, "messages[0].simNumber"),
        ({"simNumber": True}, "messages[0].simNumber"),
        ({"simNumber": "1"}, "messages[0].simNumber"),
    ):
        item = {"phoneNumber": X, "message": "x", "type": "data", "id": f"bad-{field}", **extra}
        answer = await user.client.post(
            "/api/mobile/v1/inbox", json={"messages": [item]}, headers=auth
        )
        assert answer.status_code == 400, (extra, answer.text)
        assert answer.json()["field"] == field
    received = await user.client.get("/api/v1/inbox", headers=user.auth)
    assert received.json()["data"] == []
    kept = await phone.inbox([{"phoneNumber": X, "type": "data", "port": 65535, "simNumber": 3}])
    assert len(kept) == 1


async def test_one_join_takes_its_messages_in_order(make_user, app) -> None:
    """conversations.join given several recipients of one line at once ends as if they came
    one at a time: a thread it starts with no SIM is adopted by a later message's SIM."""
    from smsgate.conversations import joining as conversations

    user = await make_user()
    phone = await pair_phone(user)
    z, w = "+5215511112222", "+5215533334444"
    plan = [(z, None), (z, 1), (w, 1), (w, 2), (w, None)]
    sent = [
        (await send(user, phoneNumbers=[n], message=f"m{i}")).json()
        for i, (n, _) in enumerate(plan)
    ]
    async with app.state.db.transaction() as session:
        found = await conversations.outbound_joinings(session, [s["id"] for s in sent])
        joinings = [  # each with the SIM the plan gives it
            replace(joining, sim_number=sim) for joining, (_, sim) in zip(found, plan, strict=True)
        ]
        placed = await conversations.join(session, phone.device_id, joinings)
    threads = await _threads(user)
    keys = sorted((t["contact"], t["simNumber"]) for t in threads)
    assert keys == sorted([(w, 1), (w, 2), (z, 1)])  # z's SIM-less thread took SIM 1
    by_key = {(t["contact"], t["simNumber"]): t for t in threads}
    assert by_key[(z, 1)]["lastMessageId"] == sent[1]["id"]
    assert by_key[(w, 2)]["lastMessageId"] == sent[4]["id"]  # the latest of w's threads
    assert by_key[(w, 1)]["lastMessageId"] == sent[2]["id"]
    first, second = joinings[0].recipient_id, joinings[1].recipient_id
    assert placed[first] == placed[second] == by_key[(z, 1)]["id"]


async def test_unread_counts_are_exact_under_concurrent_arrivals(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    await phone.inbox([{"phoneNumber": X, "message": "primero", "id": "first"}])
    thread = (await _threads(user))[0]

    async def arrive(i: int) -> None:
        await phone.inbox([{"phoneNumber": X, "message": f"m{i}", "id": f"c{i}"}])

    async def read() -> None:
        await user.client.post(f"/api/conversations/{thread['id']}/read", headers=user.auth)

    await asyncio.gather(*(arrive(i) for i in range(50)), read(), read())
    detail = (await user.client.get(f"/api/conversations/{thread['id']}", headers=user.auth)).json()
    messages = []
    cursor = None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = (
            await user.client.get(
                f"/api/conversations/{thread['id']}/messages", params=params, headers=user.auth
            )
        ).json()
        messages += page["data"]
        if not (cursor := page["nextCursor"]):
            break
    assert len(messages) == 51
    read_up_to = detail["readUpTo"] or ""
    assert detail["unreadCount"] == sum(1 for m in messages if m["id"] > read_up_to)
    done = await user.client.post(f"/api/conversations/{thread['id']}/read", headers=user.auth)
    assert done.json()["unreadCount"] == 0
    assert await _threads(user, unread="true") == []
    # read up to a given message
    middle = sorted(m["id"] for m in messages)[25]
    await phone.inbox([{"phoneNumber": X, "message": "otro", "id": "late"}])
    partial = await user.client.post(
        f"/api/conversations/{thread['id']}/read", json={"upTo": middle}, headers=user.auth
    )
    assert partial.json()["unreadCount"] == 1  # only the late one (reads never go backwards)


async def test_a_reply_goes_through_the_threads_device_and_sim(make_user) -> None:
    user = await make_user()
    a, b = await pair_phone(user, name="a"), await pair_phone(user, name="b")
    await a.inbox([{"phoneNumber": X, "message": "¿precio?", "simNumber": 2, "id": "q"}])
    thread = (await _threads(user))[0]
    replied = await user.client.post(
        f"/api/conversations/{thread['id']}/send", json={"message": "$100"}, headers=user.auth
    )
    assert replied.status_code == 202, replied.text
    body = replied.json()
    assert body["deviceId"] == a.device_id and body["simNumber"] == 2
    assert body["conversationId"] == thread["id"]
    assert await b.pull() == []
    pulled = await a.pull()
    assert [(m["id"], m["simNumber"]) for m in pulled] == [(body["id"], 2)]
    await a.report(body["id"], "Delivered", [(X, "Delivered", None)])
    got = (await user.client.get(f"/api/v1/messages/{body['id']}", headers=user.auth)).json()
    assert got["state"] == "delivered"
    shown = (
        await user.client.get(f"/api/conversations/{thread['id']}/messages", headers=user.auth)
    ).json()["data"]
    assert [m["id"] for m in shown] == [body["id"], shown[1]["id"]]
    empty = await user.client.post(
        f"/api/conversations/{thread['id']}/send", json={"message": ""}, headers=user.auth
    )
    assert empty.status_code == 400 and empty.json()["field"] == "message"


async def test_stop_then_start(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    await phone.inbox([{"phoneNumber": X, "message": "  stop ", "id": "s1"}])
    listed = (await user.client.get("/api/opt-outs", headers=user.auth)).json()["data"]
    assert [(o["phoneNumber"], o["source"], o["keyword"]) for o in listed] == [
        (X, "inbound", "STOP")
    ]
    blocked = (await send(user, phoneNumbers=[X, Y], message="promo")).json()
    states = {r["phoneNumber"]: (r["state"], r.get("error")) for r in blocked["recipients"]}
    assert states == {X: ("failed", "opted_out"), Y: ("processing", None)}
    pulled = await phone.pull()
    assert pulled[0]["phoneNumbers"] == [Y]  # the phone never sees the opted-out number
    alone = (await send(user, phoneNumbers=[X], message="promo 2")).json()
    assert alone["state"] == "failed" and alone["error"] == "opted_out"
    otp = (await send(user, phoneNumbers=[X], message="code 1234", priority=100)).json()
    assert otp["state"] == "failed"
    await user.client.patch(
        "/api/account/settings", json={"optOutBypassExpedited": True}, headers=user.auth
    )
    otp = (await send(user, phoneNumbers=[X], message="code 5678", priority=100)).json()
    assert otp["state"] == "processing"
    await phone.inbox([{"phoneNumber": X, "message": "Alta", "id": "s2"}])
    assert (await user.client.get("/api/opt-outs", headers=user.auth)).json()["data"] == []
    again = (await send(user, phoneNumbers=[X], message="bienvenido")).json()
    assert again["state"] == "processing"
    # the list by hand
    added = await user.client.post(
        "/api/opt-outs", json={"phoneNumber": "55 8765 4321"}, headers=user.auth
    )
    assert added.status_code == 201 and added.json()["phoneNumber"] == "+525587654321"
    removed = await user.client.delete("/api/opt-outs/+525587654321", headers=user.auth)
    assert removed.status_code == 200
    bad = await user.client.post("/api/opt-outs", json={"phoneNumber": "12"}, headers=user.auth)
    assert bad.status_code == 400


async def test_other_accounts_get_404(make_user) -> None:
    a, b = await make_user(), await make_user()
    phone = await pair_phone(a)
    await phone.inbox([{"phoneNumber": X, "message": "hola"}])
    thread = (await _threads(a))[0]
    for method, path, body in (
        ("GET", f"/api/conversations/{thread['id']}", None),
        ("GET", f"/api/conversations/{thread['id']}/messages", None),
        ("POST", f"/api/conversations/{thread['id']}/read", None),
        ("POST", f"/api/conversations/{thread['id']}/send", {"message": "x"}),
        ("PATCH", f"/api/conversations/{thread['id']}", {"displayName": "x"}),
    ):
        resp = await b.client.request(method, path, json=body, headers=b.auth)
        assert resp.status_code == 404, (method, path, resp.text)
    assert await _threads(b) == []
    assert (await b.client.get("/api/v1/inbox", headers=b.auth)).json()["data"] == []


async def test_pages_never_skip_or_repeat_while_messages_arrive(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    await phone.inbox([{"phoneNumber": X, "message": f"old {i}", "id": f"o{i}"} for i in range(25)])
    thread = (await _threads(user))[0]
    seen: list[str] = []
    cursor = None
    arrived = 0
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = (
            await user.client.get(
                f"/api/conversations/{thread['id']}/messages", params=params, headers=user.auth
            )
        ).json()
        seen += [m["id"] for m in page["data"]]
        await phone.inbox([{"phoneNumber": X, "message": "new", "id": f"n{arrived}"}])
        arrived += 1
        if not (cursor := page["nextCursor"]):
            break
    assert len(seen) == len(set(seen)) == 25


async def test_display_name_archive_search_and_inbox(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    await phone.inbox([{"phoneNumber": X, "message": "hola"}, {"phoneNumber": Y, "message": "hey"}])
    threads = await _threads(user)
    x = next(t for t in threads if t["contact"] == X)
    named = await user.client.patch(
        f"/api/conversations/{x['id']}", json={"displayName": "Doña Ana"}, headers=user.auth
    )
    assert named.json()["displayName"] == "Doña Ana"
    assert [t["id"] for t in await _threads(user, q="doña")] == [x["id"]]
    assert [t["contact"] for t in await _threads(user, q="87654")] == [Y]
    # LIKE's wildcards are searched for as written; a short query is read without the index
    assert await _threads(user, q="%") == [] and await _threads(user, q="a_a") == []
    assert [t["id"] for t in await _threads(user, q="ñA")] == [x["id"]]
    await user.client.patch(
        f"/api/conversations/{x['id']}", json={"archived": True}, headers=user.auth
    )
    assert [t["contact"] for t in await _threads(user)] == [Y]
    assert [t["id"] for t in await _threads(user, archived="true")] == [x["id"]]
    await phone.inbox([{"phoneNumber": X, "message": "¿sigues ahí?"}])  # unarchives
    assert {t["contact"] for t in await _threads(user)} == {X, Y}
    inbox = (
        await user.client.get("/api/v1/inbox", params={"phoneNumber": X}, headers=user.auth)
    ).json()["data"]
    assert [m["message"] for m in inbox] == ["¿sigues ahí?", "hola"]
    assert all(m["direction"] == "in" for m in inbox)
