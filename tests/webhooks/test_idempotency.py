"""Idempotency-Key on POST /api/webhooks: a retry gets the first answer, byte for byte, for 24
hours; a different request with the key is a 409; refusals are not remembered."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from smsgate.kit import clock
from smsgate.storage.idempotency import IdempotencyRecord
from smsgate.worker.jobs import run_jobs

HOOK = {"url": "https://hooks.example.com/sms", "events": ["sms:received"]}


def _with_key(user, key: str) -> dict[str, str]:
    return {**user.auth, "Idempotency-Key": key}


async def _hook_ids(user) -> list[str]:
    listed = (await user.client.get("/api/webhooks", headers=user.auth)).json()["data"]
    return sorted(h["id"] for h in listed)


async def _records(app, user) -> int:
    async with app.state.db.sessions() as session:
        count = select(func.count(IdempotencyRecord.id)).where(
            IdempotencyRecord.account_id == user.account_id
        )
        return int((await session.execute(count)).scalar_one())


async def test_a_retry_gets_the_first_answer_byte_for_byte_and_creates_nothing(make_user) -> None:
    user = await make_user()
    first = await user.client.post("/api/webhooks", json=HOOK, headers=_with_key(user, "k-1"))
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = await user.client.post("/api/webhooks", json=HOOK, headers=_with_key(user, "k-1"))
    assert again.status_code == 201
    assert again.content == first.content  # the secret included: the same endpoint
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == "application/json"
    assert await _hook_ids(user) == [first.json()["id"]]
    # without a key every request creates
    plain = await user.client.post("/api/webhooks", json=HOOK, headers=user.auth)
    assert plain.status_code == 201 and len(await _hook_ids(user)) == 2


async def test_after_24_hours_the_key_creates_again_and_the_jobs_forget_it(app, make_user) -> None:
    user = await make_user()
    first = await user.client.post("/api/webhooks", json=HOOK, headers=_with_key(user, "day"))
    clock.advance(timedelta(hours=24) - timedelta(seconds=1))
    within = await user.client.post("/api/webhooks", json=HOOK, headers=_with_key(user, "day"))
    assert within.content == first.content
    clock.advance(timedelta(seconds=2))  # 24 h + 1 s after the first
    later = await user.client.post("/api/webhooks", json=HOOK, headers=_with_key(user, "day"))
    assert later.status_code == 201 and "idempotent-replayed" not in later.headers
    assert later.json()["id"] != first.json()["id"]
    assert await _hook_ids(user) == sorted([first.json()["id"], later.json()["id"]])
    assert await _records(app, user) == 1  # the key now stands for the second endpoint
    repeat = await user.client.post("/api/webhooks", json=HOOK, headers=_with_key(user, "day"))
    assert repeat.content == later.content
    clock.advance(timedelta(hours=24, seconds=1))
    await run_jobs(app)
    assert await _records(app, user) == 0


async def test_a_different_request_with_the_key_is_a_409_and_changes_nothing(make_user) -> None:
    user = await make_user()
    first = await user.client.post("/api/webhooks", json=HOOK, headers=_with_key(user, "k-2"))
    for changed in (
        {**HOOK, "url": "https://hooks.example.com/other"},
        {**HOOK, "events": ["sms:sent"]},
        {**HOOK, "format": "standard"},
    ):
        conflict = await user.client.post(
            "/api/webhooks", json=changed, headers=_with_key(user, "k-2")
        )
        assert conflict.status_code == 409, conflict.text
        assert conflict.json()["code"] == "idempotency_conflict"
        assert '"k-2" was already used for a different request' in conflict.json()["error"]
    assert await _hook_ids(user) == [first.json()["id"]]


async def test_malformed_keys_are_400_and_create_nothing(app, make_user) -> None:
    user = await make_user()
    for key in ("x" * 256, "two words", "", "tab\there", "ñandú".encode()):
        headers: dict[str, str | bytes] = {**user.auth, "Idempotency-Key": key}
        answer = await user.client.post("/api/webhooks", json=HOOK, headers=headers)
        assert answer.status_code == 400, (key, answer.text)
        body = answer.json()
        assert body["code"] == "invalid_idempotency_key"
        assert body["error"].startswith("Idempotency-Key: must be 1 to 255 visible ASCII")
    assert await _hook_ids(user) == []
    assert await _records(app, user) == 0
    longest = await user.client.post("/api/webhooks", json=HOOK, headers=_with_key(user, "y" * 255))
    assert longest.status_code == 201


async def test_a_refused_request_stores_nothing_so_the_corrected_one_succeeds(
    app, make_user
) -> None:
    user = await make_user()
    for bad, status in (
        ({**HOOK, "events": ["sms:nonsense"]}, 400),
        ({**HOOK, "deviceId": "cgonegonegonegonegonegone"}, 404),
    ):
        refused = await user.client.post("/api/webhooks", json=bad, headers=_with_key(user, "k-3"))
        assert refused.status_code == status, refused.text
    assert await _records(app, user) == 0
    fixed = await user.client.post("/api/webhooks", json=HOOK, headers=_with_key(user, "k-3"))
    assert fixed.status_code == 201 and "idempotent-replayed" not in fixed.headers
    assert await _hook_ids(user) == [fixed.json()["id"]]


async def test_keys_belong_to_their_account(make_user) -> None:
    alice, bob = await make_user(), await make_user()
    mine = await alice.client.post("/api/webhooks", json=HOOK, headers=_with_key(alice, "same"))
    theirs = await bob.client.post("/api/webhooks", json=HOOK, headers=_with_key(bob, "same"))
    assert theirs.status_code == 201 and "idempotent-replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]
    assert await _hook_ids(alice) == [mine.json()["id"]]
    assert await _hook_ids(bob) == [theirs.json()["id"]]


async def test_concurrent_requests_with_one_key_create_one_endpoint(make_user) -> None:
    user = await make_user()
    answers = await asyncio.gather(
        *(
            user.client.post("/api/webhooks", json=HOOK, headers=_with_key(user, "race"))
            for _ in range(10)
        )
    )
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.content for a in answers}) == 1
    assert sum("idempotent-replayed" not in a.headers for a in answers) == 1
    assert await _hook_ids(user) == [answers[0].json()["id"]]
