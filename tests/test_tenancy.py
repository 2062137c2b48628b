"""Tenancy: another account's objects answer 404 on every route; every tenant table is scoped."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from smsgate.kit import clock
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


# Routes with an id in their path that another account's caller may legitimately reach: the
# device itself (its signature) and Meta (the line's verify token) authenticate them.
NOT_ACCOUNT_ROUTES = {"/api/mobile/v1/ingest/{device_id}", "/api/whatsapp/webhook/{device_id}"}
# The third-party API answers a DELETE of an unknown id 204, as the reference server does; what
# matters is that nothing of the other account's is gone (checked at the end).
THEIR_QUIET_DELETES = {
    "/api/3rdparty/v1/auth/token/{token_id}",
    "/api/3rdparty/v1/devices/{device_id}",
    "/api/3rdparty/v1/webhooks/{hook_id}",
}
# Bodies a route checks before it looks its object up: given, so the look-up is what answers.
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/campaigns/{campaign_id}/recipients"): {
        "recipients": [{"phoneNumber": "+5215511112222"}]
    },
    ("POST", "/api/conversations/{conversation_id}/send"): {"message": "hola"},
    ("POST", "/api/webhooks/{webhook_id}/replay"): {"since": "2026-01-01T00:00:00Z"},
    ("PATCH", "/api/webhooks/{webhook_id}"): {"enabled": True},
    ("PATCH", "/api/devices/{device_id}/settings"): {"limitValue": 5},
    ("PATCH", "/api/devices/{device_id}"): {"name": "x"},
    ("PATCH", "/api/templates/{template_id}"): {"name": "x"},
    ("PATCH", "/api/contacts/{contact_id}"): {"name": "x"},
    ("PATCH", "/api/v1/messages/{message_id}"): {"message": "x"},
    ("POST", "/api/templates/{template_id}/preview"): {"rows": [{"nombre": "Ana"}]},
    ("PATCH", "/api/conversations/{conversation_id}"): {"archived": True},
}


async def test_no_route_with_an_id_reaches_another_accounts_object(make_user, app) -> None:
    """Walks the app's route table: every route with an id in its path, given account A's ids,
    answers account B 404 (or, for the third-party API's deletes, the reference's 204), and
    A's objects are all there afterwards. A new route whose parameter this test has no id for
    fails it until one is added."""
    import base64

    from fastapi.routing import APIRoute

    from tests.factories import pair_phone

    a, b = await make_user(), await make_user()
    phone = await pair_phone(a)
    jpeg = base64.b64encode(b"\xff\xd8\xff\xe0" + b"x" * 100).decode()
    [received] = await phone.inbox(
        [
            {
                "phoneNumber": "+5215512345678",
                "type": "mms",
                "message": "mira",
                "id": "mms-1",
                "attachments": [{"contentType": "image/jpeg", "name": "f.jpg", "data": jpeg}],
            }
        ]
    )
    got = (await a.client.get(f"/api/v1/messages/{received}", headers=a.auth)).json()
    attachment = got["attachments"][0]["url"].rsplit("/", 1)[1]
    later = clock.iso(clock.now() + timedelta(days=30))  # waits: it can be edited and cancelled
    scheduled = await send(a, deviceId=phone.device_id, scheduleAt=later)
    assert scheduled.status_code == 202, scheduled.text
    sent = scheduled.json()
    thread = (await a.client.get("/api/conversations", headers=a.auth)).json()["data"][0]["id"]
    hook = await a.client.post(
        "/api/webhooks",
        json={"url": "https://127.0.0.1:9/hook", "events": ["sms:received"]},
        headers=a.auth,
    )
    hook_id = hook.json()["id"]
    await a.client.post(f"/api/webhooks/{hook_id}/test", headers=a.auth)
    delivery = (await a.client.get(f"/api/webhooks/{hook_id}/deliveries", headers=a.auth)).json()
    key_id = (await a.client.get("/api/keys", headers=a.auth)).json()["data"][0]["id"]
    family = (await a.client.post("/api/auth/token", headers=a.csrf_header)).json()["id"]
    template = await a.client.post(
        "/api/templates", json={"name": "t", "message": "Hola"}, headers=a.auth
    )
    campaign = await a.client.post(
        "/api/campaigns",
        json={"name": "c", "message": "Hola", "recipients": [{"phoneNumber": "+5215544445555"}]},
        headers=a.auth,
    )
    contact = await a.client.post(
        "/api/contacts", json={"phoneNumber": "+5215544445555", "name": "Ana"}, headers=a.auth
    )
    await a.client.post("/api/opt-outs", json={"phoneNumber": "+5215599990000"}, headers=a.auth)
    ids = {
        "device_id": phone.device_id,
        "message_id": sent["id"],
        "attachment_id": attachment,
        "conversation_id": thread,
        "webhook_id": hook_id,
        "hook_id": hook_id,
        "delivery_id": delivery["data"][0]["id"],
        "key_id": key_id,
        "token_id": family,
        "template_id": template.json()["id"],
        "campaign_id": campaign.json()["id"],
        "contact_id": contact.json()["id"],
        "phone_number": "+5215599990000",
        "action": "delete",  # the dashboard's webhook actions: the most harmful one
    }

    walked = 0
    for route in app.router.routes:
        if not isinstance(route, APIRoute) or "{" not in route.path:
            continue
        if route.path in NOT_ACCOUNT_ROUTES:
            continue
        params = re.findall(r"{(\w+)}", route.path)
        unknown = [p for p in params if p not in ids]
        assert not unknown, f"{route.path}: no id of account A for {unknown}; add one"
        # a file belongs to the received message that brought it
        given = {**ids, "message_id": received} if "attachment_id" in params else ids
        path = route.path
        for name in params:
            path = path.replace("{" + name + "}", given[name])
        for method in sorted(route.methods - {"HEAD"}):
            body = BODIES.get((method, route.path))
            if route.path.startswith("/dashboard"):
                resp = await b.client.request(method, path, data={"csrf": b.csrf})
            else:
                resp = await b.client.request(method, path, headers=b.auth, json=body)
            walked += 1
            expected = 204 if method == "DELETE" and route.path in THEIR_QUIET_DELETES else 404
            assert resp.status_code == expected, (method, route.path, resp.status_code, resp.text)
            assert sent["id"] not in resp.text and thread not in resp.text, (method, route.path)
    assert walked > 60, walked

    # everything of A's is still there, as it was
    def ok(resp: Any) -> bool:
        return resp.status_code == 200

    assert ok(await a.client.get(f"/api/devices/{phone.device_id}", headers=a.auth))
    # the paths B was refused are A's to read (the file, by its received message)
    file = f"/api/v1/messages/{received}/attachments/{attachment}"
    assert ok(await a.client.get(file, headers=a.auth))
    message = await a.client.get(f"/api/v1/messages/{sent['id']}", headers=a.auth)
    assert message.json()["state"] == "processing" and not message.json().get("cancelRequested")
    assert ok(await a.client.get(f"/api/webhooks/{hook_id}", headers=a.auth))
    assert ok(await a.client.get(f"/api/templates/{ids['template_id']}", headers=a.auth))
    assert ok(await a.client.get(f"/api/contacts/{ids['contact_id']}", headers=a.auth))
    assert (await a.client.get(f"/api/campaigns/{ids['campaign_id']}", headers=a.auth)).json()[
        "state"
    ] != "cancelled"
    assert key_id in {
        k["id"] for k in (await a.client.get("/api/keys", headers=a.auth)).json()["data"]
    }
    families = (await a.client.get("/api/auth/tokens", headers=a.csrf_header)).json()["data"]
    assert family in {f["id"] for f in families}
    opted = (await a.client.get("/api/opt-outs", headers=a.auth)).json()["data"]
    assert "+5215599990000" in {o["phoneNumber"] for o in opted}
