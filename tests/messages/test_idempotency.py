"""externalId: one message per key per account, under concurrency too."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from tests.factories import send


async def test_replay_returns_original_with_200(make_user) -> None:
    user = await make_user()
    first = await send(user, externalId="order-7", message="Tu código es 1234")
    assert first.status_code == 202
    again = await send(user, externalId="order-7", message="Tu código es 1234")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["recipients"] == first.json()["recipients"]


async def test_same_key_different_request_is_409_and_changes_nothing(make_user) -> None:
    user = await make_user()
    first = (await send(user, externalId="order-8", message="uno")).json()
    for change in ({"message": "dos"}, {"phoneNumbers": ["+525512345678"]}, {"priority": 5}):
        resp = await send(user, externalId="order-8", **{"message": "uno", **change})
        assert resp.status_code == 409, resp.text
        assert resp.json()["code"] == "idempotency_conflict"
        assert first["id"] in resp.json()["error"]
    stored = (await user.client.get(f"/api/v1/messages/{first['id']}", headers=user.auth)).json()
    assert stored["message"] == "uno"
    assert stored["recipients"][0]["phoneNumber"] == "+5215555555555"
    listed = (await user.client.get("/api/v1/messages", headers=user.auth)).json()["data"]
    assert len(listed) == 1


async def test_external_ids_are_per_account(make_user) -> None:
    a, b = await make_user(), await make_user()
    first = await send(a, externalId="shared-id")
    second = await send(b, externalId="shared-id")
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] != second.json()["id"]


async def test_external_id_holds_across_keys_of_one_account(make_user) -> None:
    user = await make_user()
    resp = await user.client.post("/api/keys", json={"name": "second"}, headers=user.csrf_header)
    other_key = {"Authorization": f"Bearer {resp.json()['key']}"}
    first = await send(user, externalId="cross-key")
    second = await user.client.post(
        "/api/v1/send",
        json={
            "phoneNumbers": ["+5215555555555"],
            "message": "Hola mundo",
            "externalId": "cross-key",
        },
        headers=other_key,
    )
    assert second.status_code == 200 and second.json()["id"] == first.json()["id"]


async def test_50_concurrent_sends_over_10_external_ids_make_10_messages(make_user) -> None:
    user = await make_user()
    keys = [f"burst-{i}" for i in range(10)]
    responses = await asyncio.gather(
        *(send(user, externalId=keys[i % 10], message=f"mensaje {i % 10}") for i in range(50))
    )
    ids: dict[str, set[str]] = defaultdict(set)
    created: dict[str, int] = defaultdict(int)
    for i, resp in enumerate(responses):
        assert resp.status_code in (200, 202), resp.text
        ids[keys[i % 10]].add(resp.json()["id"])
        created[keys[i % 10]] += resp.status_code == 202
    assert all(len(found) == 1 for found in ids.values()), ids
    assert all(count == 1 for count in created.values()), created
    listed = await user.client.get("/api/v1/messages?limit=100", headers=user.auth)
    stored = listed.json()["data"]
    assert len(stored) == 10
    assert {m["externalId"] for m in stored} == set(keys)


async def test_a_rejected_send_leaves_the_key_free(make_user) -> None:
    user = await make_user()
    bad = await send(user, externalId="fix-me", phoneNumbers=["+52 123"])
    assert bad.status_code == 400
    good = await send(user, externalId="fix-me")
    assert good.status_code == 202
