"""Phones' state reports (PATCH /message) written many requests to a transaction: each report
applies as if alone, in order, with its own history, events and webhooks, and nobody reports on
another account's or another device's message."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter

import pytest
from sqlalchemy import select

from smsgate.messages import states
from smsgate.messages.reports import Report, apply_reports
from smsgate.webhooks.delivery import deliver_due
from smsgate.webhooks.events import events_table
from tests.factories import pair_phone, send
from tests.webhooks.receiver import receiving

PHONES = 6
PER_PHONE = 5


async def test_concurrent_reports_from_many_phones_each_apply_once(make_user, app) -> None:
    user = await make_user()
    async with receiving() as receiver:
        hook = await user.client.post(
            "/api/webhooks",
            json={"url": receiver.url, "events": ["sms:sent", "sms:delivered", "sms:failed"]},
            headers=user.auth,
        )
        assert hook.status_code == 201, hook.text
        phones = [await pair_phone(user, name=f"p{i}") for i in range(PHONES)]
        rng = random.Random(3)  # scattered, as the anti-pumping guard expects of real traffic
        numbers = sorted(
            {
                f"+521{rng.choice((55, 33, 81))}{rng.randrange(10**8):08d}"
                for _ in range(PHONES * PER_PHONE)
            }
        )
        sent = [await send(user, phoneNumbers=[n]) for n in numbers]
        assert all(s.status_code == 202 for s in sent), sent[-1].text
        ids = [s.json()["id"] for s in sent]
        taken = [await phone.pull() for phone in phones]
        held = {m["id"]: phone for phone, batch in zip(phones, taken, strict=True) for m in batch}
        assert set(held) == set(ids)

        async def deliver(message_id: str, number: str) -> None:
            phone = held[message_id]
            outcome = "Failed" if number.endswith("7") else "Delivered"
            await phone.report(message_id, "Sent", [(number, "Sent", None)])
            error = "RESULT_ERROR_NO_SERVICE" if outcome == "Failed" else None
            await phone.report(message_id, outcome, [(number, outcome, error)])

        await asyncio.gather(*(deliver(i, n) for i, n in zip(ids, numbers, strict=True)))
        assert max(app.state.reports.sizes) > 1, "the reports never shared a transaction"
        while await deliver_due(app.state.db, app.state.webhook_http, app.state.settings):
            pass
    for message_id, number in zip(ids, numbers, strict=True):
        got = (await user.client.get(f"/api/v1/messages/{message_id}", headers=user.auth)).json()
        final = "failed" if number.endswith("7") else "delivered"
        assert got["state"] == final and got["recipients"][0]["state"] == final
        assert [h["state"] for h in got["history"] if "phoneNumber" in h] == ["sent", final]
        assert [h["state"] for h in got["history"] if "phoneNumber" not in h] == [
            "processing",
            "sent",
            final,
        ]
        if final == "failed":
            assert got["recipients"][0]["error"] == "RESULT_ERROR_NO_SERVICE"
    events = Counter(
        (body["payload"]["messageId"], body["event"])
        for body in (json.loads(r.body) for r in receiver.requests)
    )
    expected = {(i, "sms:sent") for i in ids} | {
        (i, "sms:failed" if n.endswith("7") else "sms:delivered")
        for i, n in zip(ids, numbers, strict=True)
    }
    assert set(events) == expected and set(events.values()) == {1}


async def test_one_batch_applies_its_reports_in_order_and_checks_each_sender(
    make_user, app
) -> None:
    """In one batch: the same message reported Sent then Delivered (two transitions, as if two
    transactions), a second device of the same account and a device of another account reporting
    on it (both ignored), and an unknown id (ignored)."""
    user, other = await make_user(), await make_user()
    phone, sibling, stranger = (
        await pair_phone(user),
        await pair_phone(user, name="sibling"),
        await pair_phone(other),
    )
    number = "+5215555555555"
    message_id = (await send(user, phoneNumbers=[number])).json()["id"]
    assert [m["id"] for m in await phone.pull()] == [message_id]

    def item(state: str) -> dict:
        return {
            "id": message_id,
            "state": state,
            "recipients": [{"phoneNumber": number, "state": state}],
        }

    reports = [
        Report(phone.device_id, user.account_id, item("Sent")),
        Report(sibling.device_id, user.account_id, item("Failed")),
        Report(stranger.device_id, other.account_id, item("Failed")),
        Report(phone.device_id, user.account_id, {"id": "cnotamessage0000000000000"}),
        Report(phone.device_id, user.account_id, item("Delivered")),
    ]
    async with app.state.db.transaction() as session:
        applied = await apply_reports(session, reports)
    assert [[(t.phone_number, t.state) for t in ts] for ts in applied] == [
        [(number, "sent"), (None, "sent")],
        [],
        [],
        [],
        [(number, "delivered"), (None, "delivered")],
    ]
    got = (await user.client.get(f"/api/v1/messages/{message_id}", headers=user.auth)).json()
    assert got["state"] == "delivered" and got["recipients"][0]["state"] == "delivered"
    assert [h["state"] for h in got["history"] if "phoneNumber" in h] == ["sent", "delivered"]
    # the first report acknowledged it for its device: it never goes to another phone
    assert await sibling.pull() == []


CASES = 200
APP_NAMES = {
    "Processed": "processing",
    "Sent": "sent",
    "Delivered": "delivered",
    "Failed": "failed",
}


def _expected(reported: list[str]) -> tuple[list[str], str]:
    """A recipient's history and final state from the states reported for it, in arrival order:
    the first final state (delivered or failed) wins, and sent counts only before it."""
    finals = [i for i, state in enumerate(reported) if state in ("delivered", "failed")]
    before = reported[: finals[0]] if finals else reported
    path = (["sent"] if "sent" in before else []) + ([reported[finals[0]]] if finals else [])
    return path, path[-1] if path else "processing"


async def test_reports_in_random_order_with_duplicates_in_random_batches(make_user, app) -> None:
    """Reliability checklist 11: for 200 messages of two recipients, random report sequences
    (duplicates, any order, Processed/Sent/Delivered/Failed), interleaved and cut into random
    batches: each recipient ends in the state its reports' order implies, its history holds each
    real transition once, and each transition made exactly one event."""
    rng = random.Random(11)
    user = await make_user()
    phone = await pair_phone(user)
    pair = ["+5215555555555", "+5213312345678"]
    ids = [
        (await send(user, phoneNumbers=pair, message=f"m{i}")).json()["id"] for i in range(CASES)
    ]
    taken: set[str] = set()
    while batch := await phone.pull():
        for message in batch:  # acknowledged (Processed: no transition), so the next pull moves on
            await phone.report(message["id"], "Processed", [])
            taken.add(message["id"])
    assert taken == set(ids)
    plan: list[Report] = []
    reported: dict[tuple[str, str], list[str]] = {(m, n): [] for m in ids for n in pair}
    for message_id in ids:
        for _ in range(rng.randint(1, 6)):
            chosen = rng.sample(pair, rng.randint(1, 2))
            entries = [{"phoneNumber": n, "state": rng.choice(list(APP_NAMES))} for n in chosen]
            item = {"id": message_id, "state": entries[0]["state"], "recipients": entries}
            plan.append(Report(phone.device_id, user.account_id, item))
    rng.shuffle(plan)  # messages interleaved, each message's reports in a random order
    for report in plan:
        for entry in report.item["recipients"]:
            reported[(report.item["id"], entry["phoneNumber"])].append(APP_NAMES[entry["state"]])
    start = 0
    while start < len(plan):
        size = rng.choice((1, 1, 2, 3, 7, 20, 60))
        async with app.state.db.transaction() as session:
            await apply_reports(session, plan[start : start + size])
        start += size
    async with app.state.db.transaction() as session:
        emitted = Counter(
            (p["messageId"], p["phoneNumber"], p["state"])
            for p in (
                await session.execute(
                    select(events_table.c.payload).where(
                        events_table.c.account_id == user.account_id,
                        events_table.c.type.like("sms:%"),
                    )
                )
            ).scalars()
        )
    for message_id in ids:
        got = (await user.client.get(f"/api/v1/messages/{message_id}", headers=user.auth)).json()
        finals = {}
        for recipient in got["recipients"]:
            number = recipient["phoneNumber"]
            path, final = _expected(reported[(message_id, number)])
            history = [h["state"] for h in got["history"] if h.get("phoneNumber") == number]
            assert (history, recipient["state"]) == (path, final), reported[(message_id, number)]
            for state in path:
                assert emitted[(message_id, number, state)] == 1
            finals[number] = final
        assert got["state"] == states.message_state(finals.values())
    assert sum(emitted.values()) == sum(len(_expected(r)[0]) for r in reported.values())


async def test_two_transactions_reporting_on_one_message_apply_one_after_the_other(
    make_user, app
) -> None:
    """Two processes' batches on one message at once (PostgreSQL; on SQLite one process holds
    the write lock): the second waits for the first and sees what it wrote, so a late `Sent`
    does not take a recipient back from `delivered`."""
    if app.state.db.dialect != "postgresql":
        pytest.skip("SQLite runs one process; BEGIN IMMEDIATE serializes its transactions")
    user = await make_user()
    phone = await pair_phone(user)
    number = "+5215555555555"
    message_id = (await send(user, phoneNumbers=[number])).json()["id"]
    await phone.pull()

    def report(state: str) -> list[Report]:
        entry = {"phoneNumber": number, "state": state}
        return [Report(phone.device_id, user.account_id, {"id": message_id, "recipients": [entry]})]

    first_applied = asyncio.Event()
    commit_first = asyncio.Event()

    async def first() -> None:
        async with app.state.db.transaction() as session:
            await apply_reports(session, report("Delivered"))
            first_applied.set()
            await commit_first.wait()

    async def second() -> list[list]:
        await first_applied.wait()
        async with app.state.db.transaction() as session:
            return await apply_reports(session, report("Sent"))

    holding = asyncio.ensure_future(first())
    late = asyncio.ensure_future(second())
    await first_applied.wait()
    await asyncio.sleep(0.3)
    assert not late.done()  # waiting on the first transaction's lock
    commit_first.set()
    await holding
    assert await late == [[]]  # it saw `delivered`: a `Sent` moves nothing
    got = (await user.client.get(f"/api/v1/messages/{message_id}", headers=user.auth)).json()
    assert got["state"] == "delivered" and got["recipients"][0]["state"] == "delivered"


async def test_nul_characters_in_a_report_never_refuse_it(make_user, app, caplog) -> None:
    """Found by the API fuzzer on PostgreSQL: a NUL in a report's error text failed its batch
    (then retried alone and refused). A phone's report is never refused for its free text: the
    NUL is dropped from what is stored, and an id holding one names no message."""
    user = await make_user()
    phone = await pair_phone(user)
    sent = await send(user, phoneNumbers=["+5215555555555"])
    message_id = sent.json()["id"]
    assert [m["id"] for m in await phone.pull()] == [message_id]
    await phone.report(message_id + "\x00", "Sent", [("+5215555555555", "Sent", None)])
    await phone.report_entries(
        message_id,
        [
            {
                "phoneNumber": "+5215555555555",
                "state": "Failed",
                "error": "RESULT_ERROR\x00_GENERIC",
                "providerMessageId": "pm\x00-1",
            }
        ],
        state="Failed",
    )
    shown = (await user.client.get(f"/api/v1/messages/{message_id}", headers=user.auth)).json()
    assert shown["state"] == "failed"
    assert shown["recipients"][0]["error"] == "RESULT_ERROR_GENERIC"
    assert "failed; running each item once more alone" not in caplog.text
