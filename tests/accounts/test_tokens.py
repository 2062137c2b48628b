"""at_/rt_ tokens: issue, scopes, refresh rotation, reuse detection, revocation, tampering."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta

import jwt

from smsgate.kit import clock


async def _tokens(user, **body) -> dict:
    resp = await user.client.post("/api/auth/token", json=body or None, headers=user.csrf_header)
    assert resp.status_code == 201, resp.text
    return resp.json()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_issue_needs_a_session_and_returns_the_seed_shape(make_user) -> None:
    user = await make_user()
    pair = await _tokens(user)
    assert pair["accessToken"].startswith("at_") and pair["refreshToken"].startswith("rt_")
    assert pair["tokenType"] == "Bearer" and pair["expiresAt"].endswith("Z")
    me = await user.client.get("/api/auth/me", headers=_bearer(pair["accessToken"]))
    assert me.status_code == 200 and me.json()["authenticatedBy"] == "token"
    with_key = await user.client.post("/api/auth/token", headers=user.auth)
    assert with_key.status_code == 403 and with_key.json()["code"] == "session_required"


async def test_access_token_lasts_15_minutes_by_default_and_ttl_is_bounded(make_user) -> None:
    user = await make_user()
    pair = await _tokens(user)
    claims = jwt.decode(pair["accessToken"][3:], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900
    custom = await _tokens(user, ttl=120)
    claims = jwt.decode(custom["accessToken"][3:], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120
    bad = await user.client.post("/api/auth/token", json={"ttl": 5}, headers=user.csrf_header)
    assert bad.status_code == 400 and bad.json()["field"] == "ttl"


async def test_token_scopes_are_enforced_with_403(make_user) -> None:
    user = await make_user()
    pair = await _tokens(user, scopes=["messages:read"])
    reader = _bearer(pair["accessToken"])
    assert (await user.client.get("/api/v1/messages", headers=reader)).status_code == 200
    denied = await user.client.post(
        "/api/v1/send", json={"phoneNumbers": ["+5215555555555"], "message": "x"}, headers=reader
    )
    assert denied.status_code == 403 and denied.json()["code"] == "insufficient_scope"
    unknown = await user.client.post(
        "/api/auth/token", json={"scopes": ["root"]}, headers=user.csrf_header
    )
    assert unknown.status_code == 400 and unknown.json()["code"] == "invalid_scope"


async def test_refresh_rotates_and_reuse_revokes_the_family(make_user) -> None:
    user = await make_user()
    first = await _tokens(user)
    second = (
        await user.client.post(
            "/api/auth/token/refresh", json={"refreshToken": first["refreshToken"]}
        )
    ).json()
    assert second["refreshToken"] != first["refreshToken"]
    assert (
        await user.client.get("/api/auth/me", headers=_bearer(second["accessToken"]))
    ).status_code == 200
    reused = await user.client.post(
        "/api/auth/token/refresh", json={"refreshToken": first["refreshToken"]}
    )
    assert reused.status_code == 401 and reused.json()["code"] == "token_reused"
    # the whole family is dead: the successor refresh token and its access token too
    successor = await user.client.post(
        "/api/auth/token/refresh", json={"refreshToken": second["refreshToken"]}
    )
    assert successor.status_code == 401
    assert (
        await user.client.get("/api/auth/me", headers=_bearer(second["accessToken"]))
    ).status_code == 401
    # another family is untouched
    other = await _tokens(user)
    ok = await user.client.post(
        "/api/auth/token/refresh", json={"refreshToken": other["refreshToken"]}
    )
    assert ok.status_code == 200


async def test_concurrent_refreshes_of_one_token_give_one_winner_and_no_500(make_user) -> None:
    user = await make_user()
    pair = await _tokens(user)
    results = await asyncio.gather(
        *(
            user.client.post("/api/auth/token/refresh", json={"refreshToken": pair["refreshToken"]})
            for _ in range(20)
        )
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(200) <= 1 and set(statuses) <= {200, 401}, statuses
    assert all(
        r.json()["code"] in ("token_reused", "invalid_token")
        for r in results
        if r.status_code == 401
    )


async def test_refresh_token_is_not_a_bearer(make_user) -> None:
    user = await make_user()
    pair = await _tokens(user)
    resp = await user.client.get("/api/v1/messages", headers=_bearer(pair["refreshToken"]))
    assert resp.status_code == 401 and "refresh" in resp.json()["error"]


async def test_expired_tampered_and_wrong_type_tokens_are_refused(make_user, settings) -> None:
    user = await make_user()
    pair = await _tokens(user, ttl=60)
    raw = pair["accessToken"][3:]
    header, payload, signature = raw.split(".")

    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered = f"{header}.{b64({**claims, 'scope': 'keys billing'})}.{signature}"
    alg_none = f"{b64({'alg': 'none', 'typ': 'at+jwt'})}.{payload}."
    wrong_aud = jwt.encode(
        {**claims, "aud": "other"}, "x" * 32, algorithm="HS256", headers={"typ": "at+jwt"}
    )
    from smsgate.kit.crypto import derive_key

    key = derive_key(settings.secret_key, "access-token/v1")
    wrong_typ = jwt.encode(claims, key, algorithm="HS256", headers={"typ": "JWT"})
    wrong_aud_signed = jwt.encode(
        {**claims, "aud": "other"}, key, algorithm="HS256", headers={"typ": "at+jwt"}
    )
    for token in (tampered, alg_none, wrong_aud, wrong_typ, wrong_aud_signed, "garbage", raw + "x"):
        resp = await user.client.get("/api/v1/messages", headers=_bearer("at_" + token))
        assert resp.status_code == 401, token
        assert resp.json()["code"] == "invalid_token"
        assert resp.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    good = jwt.encode(claims, key, algorithm="HS256", headers={"typ": "at+jwt"})
    assert (
        await user.client.get("/api/v1/messages", headers=_bearer("at_" + good))
    ).status_code == 200
    clock.advance(timedelta(seconds=61))
    expired = await user.client.get("/api/v1/messages", headers=_bearer(pair["accessToken"]))
    assert expired.status_code == 401 and "expired" in expired.json()["error"]


async def test_refresh_token_expires(make_user) -> None:
    user = await make_user()
    pair = await _tokens(user)
    clock.advance(timedelta(days=31))
    resp = await user.client.post(
        "/api/auth/token/refresh", json={"refreshToken": pair["refreshToken"]}
    )
    assert resp.status_code == 401 and resp.json()["code"] == "invalid_token"


async def test_revoke_access_and_refresh_tokens(make_user) -> None:
    user = await make_user()
    pair = await _tokens(user)
    revoke = await user.client.post(
        "/api/auth/token/revoke", json={"token": pair["accessToken"]}, headers=user.auth
    )
    assert revoke.status_code == 200
    assert (
        await user.client.get("/api/auth/me", headers=_bearer(pair["accessToken"]))
    ).status_code == 401
    # the refresh token still works until its family is revoked
    fresh = (
        await user.client.post(
            "/api/auth/token/refresh", json={"refreshToken": pair["refreshToken"]}
        )
    ).json()
    await user.client.post(
        "/api/auth/token/revoke", json={"token": fresh["refreshToken"]}, headers=user.auth
    )
    after = await user.client.post(
        "/api/auth/token/refresh", json={"refreshToken": fresh["refreshToken"]}
    )
    assert after.status_code == 401
    assert (
        await user.client.get("/api/auth/me", headers=_bearer(fresh["accessToken"]))
    ).status_code == 401


async def test_token_families_are_listed_and_revocable_by_id(make_user) -> None:
    user = await make_user()
    pair = await _tokens(user)
    listed = (await user.client.get("/api/auth/tokens", headers=user.auth)).json()["data"]
    assert [f["id"] for f in listed] == [pair["id"]]
    resp = await user.client.delete(f"/api/auth/tokens/{pair['id']}", headers=user.auth)
    assert resp.status_code == 200
    assert (await user.client.get("/api/auth/tokens", headers=user.auth)).json()["data"] == []
    assert (
        await user.client.get("/api/auth/me", headers=_bearer(pair["accessToken"]))
    ).status_code == 401
