"""The dispatch engine: exactly-once hand-out, limits, expiry, failover, cancel, tenancy."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

from smsgate.kit import clock
from smsgate.messages import queue, states, sweeps
from smsgate.worker.jobs import run_jobs
from tests.factories import pair_phone, send


async def _send_many(user, count: int, **fields) -> list[str]:
    ids = []
    for start in range(0, count, 50):
        batch = await asyncio.gather(
            *(send(user, message=f"m{i}", **fields) for i in range(start, min(count, start + 50)))
        )
        ids += [r.json()["id"] for r in batch]
    return ids


async def test_four_devices_pulling_2000_messages_get_each_exactly_once(make_user, app) -> None:
    user = await make_user()
    phones = [await pair_phone(user, name=f"p{i}") for i in range(4)]
    await user.client.patch(
        f"/api/devices/{phones[0].device_id}/settings",
        json={"limitPeriod": "PerMinute", "limitValue": 7},
        headers=user.auth,
    )
    expired = await _send_many(user, 20, ttl=1)
    clock.advance(timedelta(seconds=2))
    ids = await _send_many(user, 2000)
    expedited = await _send_many(user, 20, priority=100)
    handed: Counter[str] = Counter()
    per_phone: dict[int, list[dict]] = {i: [] for i in range(4)}

    async def drain(index: int) -> None:
        phone = phones[index]
        while True:
            batch = await phone.pull()
            if not batch:
                return
            for message in batch:
                handed[message["id"]] += 1
                per_phone[index].append(message)
                await phone.report(
                    message["id"],
                    "Processed",
                    [(n, "Processed", None) for n in message["phoneNumbers"]],
                )

    await asyncio.gather(*(drain(i) for i in range(4)))
    assert set(handed) == set(ids) | set(expedited)
    assert all(count == 1 for count in handed.values())
    assert not set(expired) & set(handed)
    limited = [m for m in per_phone[0] if m["priority"] < 100]
    assert len(limited) <= 7  # per-device limit, expedited messages excepted


async def test_expired_messages_fail_with_expired(make_user, app) -> None:
    user = await make_user()
    msg = (await send(user, ttl=5)).json()
    clock.advance(timedelta(seconds=6))
    phone = await pair_phone(user)
    assert await phone.pull() == []
    await run_jobs(app)
    got = (await user.client.get(f"/api/v1/messages/{msg['id']}", headers=user.auth)).json()
    assert got["state"] == "failed" and got["error"] == "expired"
    assert got["recipients"][0]["error"] == "expired"
    assert [h["state"] for h in got["history"] if "phoneNumber" not in h] == [
        "processing",
        "failed",
    ]


async def test_failover_of_unacknowledged_messages(make_user, app) -> None:
    user = await make_user()
    a, b = await pair_phone(user, name="a"), await pair_phone(user, name="b")
    kept = (await send(user, message="acknowledged")).json()["id"]
    moved = (await send(user, message="never acknowledged")).json()["id"]
    assert {m["id"] for m in await a.pull()} == {kept, moved}
    await a.report(kept, "Processed", [("+5215555555555", "Processed", None)])
    assert await b.pull() == []  # A holds both
    clock.advance(timedelta(minutes=3))  # A falls silent past the 2-minute window
    await b.settings()  # B keeps talking
    await run_jobs(app)
    assert [m["id"] for m in await b.pull()] == [moved]
    devices = {
        d["id"]: d
        for d in (await user.client.get("/api/devices", headers=user.auth)).json()["data"]
    }
    assert (
        devices[a.device_id]["status"] == "offline" and devices[b.device_id]["status"] == "online"
    )
    logs = (await user.client.get(f"/api/devices/{a.device_id}/logs", headers=user.auth)).json()[
        "data"
    ]
    assert [entry["event"] for entry in logs][:1] == ["offline"]
    # A comes back: the acknowledged message is still its own, the moved one is B's
    await a.report(kept, "Sent", [("+5215555555555", "Sent", None)])
    got = (await user.client.get(f"/api/v1/messages/{kept}", headers=user.auth)).json()
    assert got["state"] == "sent"
    assert await a.pull() == []


async def test_pinned_messages_go_only_to_their_device(make_user) -> None:
    user = await make_user()
    a, b = await pair_phone(user, name="a"), await pair_phone(user, name="b")
    pinned = (await send(user, deviceId=b.device_id)).json()["id"]
    assert await a.pull() == []
    assert [m["id"] for m in await b.pull()] == [pinned]


async def test_cancel_reaches_the_phone_that_holds_the_message(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    waiting = (await send(user, message="not yet pulled")).json()["id"]
    now = await user.client.post(f"/api/v1/messages/{waiting}/cancel", headers=user.auth)
    assert now.json()["state"] == "cancelled"
    held = (await send(user, message="pulled")).json()["id"]
    await phone.pull()
    asked = await user.client.post(f"/api/v1/messages/{held}/cancel", headers=user.auth)
    assert asked.status_code == 200
    assert asked.json()["state"] == "processing" and asked.json()["cancelRequested"] is True
    pulled = await phone.pull()
    assert [(m["id"], m["state"]) for m in pulled] == [(held, "Cancelling")]
    await phone.report(held, "Cancelled", [("+5215555555555", "Cancelled", None)])
    got = (await user.client.get(f"/api/v1/messages/{held}", headers=user.auth)).json()
    assert got["state"] == "cancelled"
    assert await phone.pull() == []
    # a phone cannot cancel what nobody asked to cancel
    other = (await send(user)).json()["id"]
    await phone.pull()
    await phone.report(other, "Cancelled", [("+5215555555555", "Cancelled", None)])
    got = (await user.client.get(f"/api/v1/messages/{other}", headers=user.auth)).json()
    assert got["state"] == "processing"


async def test_deleting_a_device(make_user) -> None:
    user = await make_user()
    a, b = await pair_phone(user, name="a"), await pair_phone(user, name="b")
    pinned = (await send(user, deviceId=a.device_id)).json()["id"]
    free = (await send(user)).json()["id"]
    assert {m["id"] for m in await a.pull()} == {pinned, free}
    gone = await user.client.delete(f"/api/devices/{a.device_id}", headers=user.auth)
    assert gone.status_code == 200
    denied = await user.client.get(
        "/api/mobile/v1/message", headers={"Authorization": f"Bearer {a.token}"}
    )
    assert denied.status_code == 401
    assert [m["id"] for m in await b.pull()] == [free]
    got = (await user.client.get(f"/api/v1/messages/{pinned}", headers=user.auth)).json()
    assert got["state"] == "failed" and got["error"] == "device_deleted"
    assert (
        await user.client.get(f"/api/devices/{a.device_id}", headers=user.auth)
    ).status_code == 404


async def test_a_device_never_sees_or_changes_another_accounts_messages(make_user) -> None:
    owner, intruder = await make_user(), await make_user()
    mine = await pair_phone(owner)
    theirs = await pair_phone(intruder)
    msg = (await send(owner)).json()["id"]
    assert await theirs.pull() == []
    await theirs.report(msg, "Failed", [("+5215555555555", "Failed", "hijack")])
    got = (await owner.client.get(f"/api/v1/messages/{msg}", headers=owner.auth)).json()
    assert got["state"] == "processing"
    assert [m["id"] for m in await mine.pull()] == [msg]
    # and device management is tenant-scoped
    for path in (
        f"/api/devices/{mine.device_id}",
        f"/api/devices/{mine.device_id}/settings",
        f"/api/devices/{mine.device_id}/logs",
    ):
        assert (await intruder.client.get(path, headers=intruder.auth)).status_code == 404
    pairing = f"/api/devices/{mine.device_id}/pairing"
    assert (await intruder.client.post(pairing, headers=intruder.auth)).status_code == 404
    assert (
        await intruder.client.delete(f"/api/devices/{mine.device_id}", headers=intruder.auth)
    ).status_code == 404
    patched = await intruder.client.patch(
        f"/api/devices/{mine.device_id}/settings", json={"limitValue": 1}, headers=intruder.auth
    )
    assert patched.status_code == 404


async def test_failed_recipients_are_logged_for_the_device(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    msg = (await send(user)).json()["id"]
    await phone.pull()
    await phone.report(
        msg,
        "Failed",
        [("+5215555555555", "Failed", "Send result: RESULT_ERROR_NO_SERVICE")],
        {"Failed": datetime.now(UTC)},
    )
    logs = await user.client.get(
        f"/api/devices/{phone.device_id}/logs?level=error", headers=user.auth
    )
    entries = logs.json()["data"]
    assert entries[0]["event"] == "recipient_failed"
    assert "RESULT_ERROR_NO_SERVICE" in entries[0]["message"]
    assert all(e["level"] == "error" for e in entries)


async def test_a_phone_silent_for_a_day_after_taking_a_message_fails_it_until_it_reports(
    make_user, app
) -> None:
    """A phone took a message (acknowledged) and fell silent: after
    SMSGATE_DEVICE_STALLED_AFTER_SECONDS (a day) its recipients still `processing` fail with
    `device_timeout` (the truth: nobody knows), those it reported `sent` stay sent, it goes to
    no other phone; and when the phone comes back and reports, its report still applies."""
    user = await make_user()
    a, b = await pair_phone(user, name="a"), await pair_phone(user, name="b")
    first, second = "+5215555555555", "+525512345678"
    silent = (await send(user, phoneNumbers=[first, second])).json()["id"]
    assert [m["id"] for m in await a.pull()] == [silent]
    await a.report(silent, "Processed", [(first, "Sent", None), (second, "Processed", None)])
    clock.advance(timedelta(hours=23))
    await run_jobs(app)
    got = (await user.client.get(f"/api/v1/messages/{silent}", headers=user.auth)).json()
    assert got["state"] == "processing"  # not yet
    clock.advance(timedelta(hours=2))
    await run_jobs(app)
    got = (await user.client.get(f"/api/v1/messages/{silent}", headers=user.auth)).json()
    states = {r["phoneNumber"]: (r["state"], r.get("error")) for r in got["recipients"]}
    assert states[first] == ("sent", None)
    assert states[second][0] == "failed" and states[second][1].startswith("device_timeout: ")
    assert got["state"] == "sent"  # one sent, one failed
    assert await b.pull() == []
    # the phone comes back and says what happened: that still counts
    await a.report(silent, "Delivered", [(first, "Delivered", None), (second, "Delivered", None)])
    got = (await user.client.get(f"/api/v1/messages/{silent}", headers=user.auth)).json()
    assert got["state"] == "delivered" and "error" not in got
    assert {r["state"] for r in got["recipients"]} == {"delivered"}
    assert not any("error" in r for r in got["recipients"])
    assert [h["state"] for h in got["history"] if h.get("phoneNumber") == second] == [
        "failed",
        "delivered",
    ]


async def test_a_message_all_of_whose_recipients_timed_out_fails_and_recovers(
    make_user, app
) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    msg = (await send(user)).json()["id"]
    await phone.pull()
    await phone.report(msg, "Processed", [("+5215555555555", "Processed", None)])
    clock.advance(timedelta(days=2))
    await run_jobs(app)
    got = (await user.client.get(f"/api/v1/messages/{msg}", headers=user.auth)).json()
    assert got["state"] == "failed" and got["error"].startswith("device_timeout: ")
    await phone.report(msg, "Sent", [("+5215555555555", "Sent", None)])
    got = (await user.client.get(f"/api/v1/messages/{msg}", headers=user.auth)).json()
    assert got["state"] == "sent" and "error" not in got
    # a failure the phone itself reported is final as ever
    await phone.report(msg, "Failed", [("+5215555555555", "Failed", "RESULT_ERROR_NO_SERVICE")])
    await phone.report(msg, "Delivered", [("+5215555555555", "Delivered", None)])
    got = (await user.client.get(f"/api/v1/messages/{msg}", headers=user.auth)).json()
    assert got["state"] == "failed" and got["error"] == "RESULT_ERROR_NO_SERVICE"


async def test_stalled_messages_are_failed_in_passes_until_none_is_left(make_user, app) -> None:
    """After an outage there may be more stalled messages than one transaction takes: the job
    goes on pass after pass, and a call that reaches its pass limit leaves the rest to the next."""
    user = await make_user()
    phone = await pair_phone(user)
    ids = await _send_many(user, 5)
    taken = [m["id"] for m in await phone.pull()]
    assert sorted(taken) == sorted(ids)
    for message_id in ids:  # acknowledged: they will go to no other phone
        await phone.report(message_id, "Processed", [("+5215555555555", "Processed", None)])
    cutoff = clock.now() + timedelta(seconds=1)
    error = f"{states.DEVICE_TIMEOUT}: test"
    channels = queue.ANDROID_CHANNELS
    assert await sweeps.fail_all_stalled(app.state.db, channels, cutoff, error, 2, 2) == 4
    assert await sweeps.fail_all_stalled(app.state.db, channels, cutoff, error, 2, 2) == 1
    assert await sweeps.fail_all_stalled(app.state.db, channels, cutoff, error, 2, 2) == 0
    for message_id in ids:
        got = (await user.client.get(f"/api/v1/messages/{message_id}", headers=user.auth)).json()
        assert got["state"] == "failed" and got["error"] == error


async def test_with_reroute_on_a_silent_phones_messages_go_back_to_the_queue(
    make_user, app
) -> None:
    """rerouteStalled (reliability checklist 9): a message a phone took and fell silent on goes
    to another phone after SMSGATE_DEVICE_STALLED_AFTER_SECONDS instead of failing, with only
    its recipients not yet reported; a message pinned to the silent phone stays with it (and
    fails); the history says where it came from, and the silent phone's log says so too."""
    user = await make_user()
    settings = await user.client.get("/api/account/settings", headers=user.auth)
    assert settings.json()["rerouteStalled"] is False  # off unless chosen
    turned = await user.client.patch(
        "/api/account/settings", json={"rerouteStalled": True}, headers=user.auth
    )
    assert turned.status_code == 200 and turned.json()["rerouteStalled"] is True
    silent, spare = await pair_phone(user, name="silent"), await pair_phone(user, name="spare")
    first, second = "+5215555555555", "+525512345678"
    [hello] = await silent.inbox([{"phoneNumber": second, "message": "Hola"}])
    loose = (await send(user, phoneNumbers=[first, second])).json()["id"]
    pinned = (await send(user, deviceId=silent.device_id)).json()["id"]
    assert sorted(m["id"] for m in await silent.pull()) == sorted([loose, pinned])
    await silent.report(loose, "Processed", [(first, "Sent", None), (second, "Processed", None)])
    await silent.report(pinned, "Processed", [(first, "Processed", None)])
    assert await spare.pull() == []
    clock.advance(timedelta(hours=23))
    await run_jobs(app)
    assert await spare.pull() == []  # not yet
    clock.advance(timedelta(hours=2))
    await run_jobs(app)
    handed = await spare.pull()
    assert [(m["id"], m["phoneNumbers"]) for m in handed] == [(loose, [second])]
    # the recipient not yet sent left the silent phone's thread for the spare phone's; the one
    # the silent phone sent stays in its thread
    threads = await _threads_by_line(user)
    assert await _thread_messages(user, threads[(spare.device_id, second)]) == [loose]
    assert threads[(spare.device_id, second)]["lastMessageId"] == loose
    left = threads[(silent.device_id, second)]  # shows its latest remaining message again
    assert await _thread_messages(user, left) == [hello]
    assert (left["lastMessageId"], left["lastMessagePreview"]) == (hello, "Hola")
    assert left["lastMessageDirection"] == "in"
    assert loose in await _thread_messages(user, threads[(silent.device_id, first)])
    got = (await user.client.get(f"/api/v1/messages/{loose}", headers=user.auth)).json()
    assert got["state"] == "processing"
    assert {r["phoneNumber"]: r["state"] for r in got["recipients"]} == {
        first: "sent",
        second: "processing",
    }
    assert got["history"][-1]["reroutedFrom"] == silent.device_id
    kept = (await user.client.get(f"/api/v1/messages/{pinned}", headers=user.auth)).json()
    assert kept["state"] == "failed" and kept["error"].startswith("device_timeout: ")
    logs = await user.client.get(f"/api/devices/{silent.device_id}/logs", headers=user.auth)
    rerouted = [e for e in logs.json()["data"] if e["event"] == "message_rerouted"]
    assert len(rerouted) == 1 and loose in rerouted[0]["message"]
    # the silent phone's late word no longer counts for it: the spare phone has it now
    await silent.report(loose, "Delivered", [(second, "Delivered", None)])
    got = (await user.client.get(f"/api/v1/messages/{loose}", headers=user.auth)).json()
    assert got["state"] == "processing"
    await spare.report(loose, "Delivered", [(second, "Delivered", None)])
    got = (await user.client.get(f"/api/v1/messages/{loose}", headers=user.auth)).json()
    assert {r["phoneNumber"]: r["state"] for r in got["recipients"]} == {
        first: "sent",
        second: "delivered",
    }
    # another pass finds nothing more to move
    await run_jobs(app)
    assert await spare.pull() == []


async def _threads_by_line(user) -> dict[tuple[str, str], dict]:
    listed = await user.client.get("/api/conversations", headers=user.auth)
    assert listed.status_code == 200, listed.text
    return {(t["deviceId"], t["contact"]): t for t in listed.json()["data"]}


async def _thread_messages(user, thread: dict) -> list[str]:
    url = f"/api/conversations/{thread['id']}/messages"
    shown = await user.client.get(url, headers=user.auth)
    assert shown.status_code == 200, shown.text
    return [m["id"] for m in shown.json()["data"]]


async def test_reroute_is_one_accounts_choice_and_a_boolean(make_user, app) -> None:
    chooser, other = await make_user(), await make_user()
    await chooser.client.patch(
        "/api/account/settings", json={"rerouteStalled": True}, headers=chooser.auth
    )
    bad = await chooser.client.patch(
        "/api/account/settings", json={"rerouteStalled": "yes"}, headers=chooser.auth
    )
    assert bad.status_code == 400 and "rerouteStalled" in bad.json()["error"]
    phone = await pair_phone(other)
    msg = (await send(other)).json()["id"]
    await phone.pull()
    await phone.report(msg, "Processed", [("+5215555555555", "Processed", None)])
    clock.advance(timedelta(days=2))
    await run_jobs(app)
    got = (await other.client.get(f"/api/v1/messages/{msg}", headers=other.auth)).json()
    assert got["state"] == "failed" and got["error"].startswith("device_timeout: ")
    assert "reroutedFrom" not in got["history"][-1]


async def test_failing_stalled_messages_spares_those_an_account_wants_rerouted(
    make_user, app
) -> None:
    """The failing step leaves re-routable messages alone however far re-routing got (a run
    that stopped at its pass limit must not fail what the account asked to re-route)."""
    user = await make_user()
    await user.client.patch(
        "/api/account/settings", json={"rerouteStalled": True}, headers=user.auth
    )
    phone = await pair_phone(user)
    msg = (await send(user)).json()["id"]
    await phone.pull()
    await phone.report(msg, "Processed", [("+5215555555555", "Processed", None)])
    cutoff = clock.now() + timedelta(seconds=1)
    error = f"{states.DEVICE_TIMEOUT}: test"
    db, channels = app.state.db, queue.ANDROID_CHANNELS
    assert await sweeps.fail_all_stalled(db, channels, cutoff, error) == 0
    got = (await user.client.get(f"/api/v1/messages/{msg}", headers=user.auth)).json()
    assert got["state"] == "processing"
    assert await sweeps.reroute_all_stalled(db, cutoff) == {user.account_id}
    assert [m["id"] for m in await phone.pull()] == [msg]
