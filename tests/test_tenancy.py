"""Tenancy: another account's objects answer 404 on every route; every tenant table is scoped."""

from __future__ import annotations

from smsgate.models import metadata
from tests.factories import add_device, send

# Tables that exist before or outside any account.
GLOBAL_TABLES = {"accounts", "login_throttles", "rate_limits"}


def test_every_tenant_table_has_a_non_null_account_id() -> None:
    for name, table in metadata.tables.items():
        if name in GLOBAL_TABLES:
            continue
        column = table.columns.get("account_id")
        assert column is not None, f"{name} lacks account_id"
        assert not column.nullable, f"{name}.account_id is nullable"
        assert any(fk.column.table.name == "accounts" for fk in column.foreign_keys), name


async def test_account_b_gets_404_for_everything_of_account_a(make_user, app) -> None:
    a, b = await make_user(), await make_user()
    message = (await send(a, externalId="secret-order")).json()
    a_key_id = (await a.client.get("/api/keys", headers=a.auth)).json()["data"][0]["id"]
    a_tokens = (await a.client.post("/api/auth/token", headers=a.csrf_header)).json()
    a_device = await add_device(app, a.account_id)

    b_pair = (await b.client.post("/api/auth/token", headers=b.csrf_header)).json()
    b_credentials = {
        "key": b.auth,
        "token": {"Authorization": f"Bearer {b_pair['accessToken']}"},
        "session": b.csrf_header,  # with b's cookie jar
    }
    routes = [
        ("GET", f"/api/devices/{a_device}/qr", None),
        ("GET", f"/api/v1/messages/{message['id']}", None),
        ("POST", f"/api/v1/messages/{message['id']}/cancel", None),
        ("DELETE", f"/api/keys/{a_key_id}", None),
        ("DELETE", f"/api/auth/tokens/{a_tokens['id']}", None),
        ("POST", "/api/auth/token/revoke", {"token": a_tokens["refreshToken"]}),
        ("POST", "/api/auth/token/revoke", {"token": a_tokens["accessToken"]}),
        ("GET", f"/api/v1/messages?deviceId={a_device}", None),
        (
            "POST",
            "/api/v1/send",
            {"phoneNumbers": ["+5215555555555"], "message": "x", "deviceId": a_device},
        ),
    ]
    for kind, headers in b_credentials.items():
        for method, path, body in routes:
            resp = await b.client.request(method, path, headers=headers, json=body)
            assert resp.status_code == 404, (kind, method, path, resp.text)
            assert resp.json()["code"] == "not_found"
            assert message["id"] not in resp.text
        listed = await b.client.get("/api/v1/messages", headers=headers)
        assert message["id"] not in {m["id"] for m in listed.json()["data"]}, kind
        keys = (await b.client.get("/api/keys", headers=headers)).json()["data"]
        assert a_key_id not in {k["id"] for k in keys}
        families = (await b.client.get("/api/auth/tokens", headers=headers)).json()["data"]
        assert a_tokens["id"] not in {f["id"] for f in families}
        # B reusing A's externalId makes B's own message, never A's
        own = await send(b, externalId="secret-order")
        assert own.json()["id"] != message["id"]

    # nothing of A's changed
    still = await a.client.get(f"/api/v1/messages/{message['id']}", headers=a.auth)
    assert still.json()["state"] == "processing"
    assert (await a.client.get("/api/v1/messages", headers=a.auth)).status_code == 200
    a_token_ok = await a.client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {a_tokens['accessToken']}"}
    )
    assert a_token_ok.status_code == 200
    refreshed = await a.client.post(
        "/api/auth/token/refresh", json={"refreshToken": a_tokens["refreshToken"]}
    )
    assert refreshed.status_code == 200
