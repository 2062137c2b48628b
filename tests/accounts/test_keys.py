"""API keys: shown once, stored hashed, checksummed, listed without secrets, revoked at once."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from smsgate.accounts.models import ApiKey


async def test_key_is_shown_once_and_stored_only_as_a_hash(make_user, app) -> None:
    user = await make_user(with_key=False)
    created = await user.client.post("/api/keys", json={"name": "ci"}, headers=user.csrf_header)
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("sk_") and body["key"].startswith(body["prefix"])
    assert set(body) >= {"id", "name", "key", "prefix", "createdAt"}
    listed = (await user.client.get("/api/keys")).json()["data"]
    assert [k["id"] for k in listed] == [body["id"]]
    assert "key" not in listed[0] and listed[0]["prefix"] == body["prefix"]
    async with app.state.db.transaction() as session:
        row = (await session.execute(select(ApiKey).where(ApiKey.id == body["id"]))).scalar_one()
        assert row.key_hash == hashlib.sha256(body["key"].encode()).hexdigest()
        assert body["key"] not in (row.key_hash, row.prefix, row.name)


async def test_last_used_at_is_recorded(make_user) -> None:
    user = await make_user()
    await user.client.get("/api/v1/messages", headers=user.auth)
    listed = (await user.client.get("/api/keys", headers=user.auth)).json()["data"]
    assert listed[0]["lastUsedAt"] is not None


async def test_a_mistyped_key_fails_its_checksum(make_user) -> None:
    user = await make_user()
    key = user.key
    typo = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]
    resp = await user.client.get("/api/v1/messages", headers={"Authorization": f"Bearer {typo}"})
    assert resp.status_code == 401
    assert resp.json()["code"] == "invalid_api_key"
    assert "checksum" in resp.json()["error"]
    truncated = await user.client.get(
        "/api/v1/messages", headers={"Authorization": f"Bearer {key[:-1]}"}
    )
    assert truncated.status_code == 401 and "checksum" in truncated.json()["error"]


async def test_revoked_key_is_refused_at_once(make_user) -> None:
    user = await make_user()
    key_id = (await user.client.get("/api/keys", headers=user.auth)).json()["data"][0]["id"]
    assert (await user.client.get("/api/v1/messages", headers=user.auth)).status_code == 200
    revoked = await user.client.delete(f"/api/keys/{key_id}", headers=user.csrf_header)
    assert revoked.status_code == 200
    after = await user.client.get("/api/v1/messages", headers=user.auth)
    assert after.status_code == 401
    assert after.json()["error"] == "this API key is unknown or was revoked"
    again = await user.client.delete(f"/api/keys/{key_id}", headers=user.csrf_header)
    assert again.status_code == 404


async def test_key_scopes_are_enforced(make_user) -> None:
    user = await make_user()
    bad = await user.client.post(
        "/api/keys", json={"name": "r", "scopes": ["messages:read", "fly"]}, headers=user.auth
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_scope"
    assert bad.json()["error"].startswith('scopes[1]: unknown scope "fly"')
    made = await user.client.post(
        "/api/keys", json={"name": "r", "scopes": ["messages:read"]}, headers=user.auth
    )
    reader = {"Authorization": f"Bearer {made.json()['key']}"}
    assert (await user.client.get("/api/v1/messages", headers=reader)).status_code == 200
    denied = await user.client.post(
        "/api/v1/send", json={"phoneNumbers": ["+5215555555555"], "message": "x"}, headers=reader
    )
    assert denied.status_code == 403
    assert denied.json()["code"] == "insufficient_scope"
    assert '"messages:send"' in denied.json()["error"]
    assert (await user.client.get("/api/keys", headers=reader)).status_code == 403
    listed = (await user.client.get("/api/v1/messages", headers=user.auth)).json()["data"]
    assert listed == []


async def test_key_name_is_required(make_user) -> None:
    user = await make_user()
    resp = await user.client.post("/api/keys", json={"name": ""}, headers=user.auth)
    assert resp.status_code == 400 and resp.json()["error"].startswith("name: must have at least 1")
