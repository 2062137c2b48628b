"""Webhook endpoints: create, list, change, secrets, SSRF refusals, tenancy."""

from __future__ import annotations

import httpx
import pytest

from smsgate.app import create_app
from tests.factories import BASE_URL, add_device

CATALOG = {
    "sms:received",
    "sms:sent",
    "sms:delivered",
    "sms:failed",
    "mms:received",
    "mms:downloaded",
    "whatsapp:received",
    "whatsapp:sent",
    "whatsapp:delivered",
    "whatsapp:failed",
    "system:ping",
    "device:online",
    "device:offline",
    "webhook:disabled",
    "campaign:finished",
}


async def test_the_seed_events_are_listed(make_user) -> None:
    user = await make_user()
    listed = (await user.client.get("/api/webhooks/events", headers=user.auth)).json()["data"]
    assert {e["event"] for e in listed} == CATALOG
    assert all(e["description"] and e["payload"].startswith("{") for e in listed)


async def test_create_list_patch_delete_and_secret(make_user, app) -> None:
    user = await make_user()
    created = await user.client.post(
        "/api/webhooks",
        json={"url": "https://hooks.example.com/sms", "events": ["sms:received"]},
        headers=user.auth,
    )
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"].startswith("whsec_") and hook["format"] == "native"
    assert hook["enabled"] is True and hook["deviceId"] is None
    listed = (await user.client.get("/api/webhooks", headers=user.auth)).json()["data"]
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
    secret = (await user.client.get(f"/api/webhooks/{hook['id']}/secret", headers=user.auth)).json()
    assert secret == {"secret": hook["secret"], "previousSecret": None}
    device = await add_device(app, user.account_id)
    patched = await user.client.patch(
        f"/api/webhooks/{hook['id']}",
        json={
            "events": ["sms:sent", "sms:failed"],
            "format": "standard",
            "deviceId": device,
            "enabled": False,
        },
        headers=user.auth,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["events"] == ["sms:sent", "sms:failed"] and body["format"] == "standard"
    assert body["deviceId"] == device and body["enabled"] is False
    assert body["disabledReason"] == "disabled by its owner"
    gone = await user.client.delete(f"/api/webhooks/{hook['id']}", headers=user.auth)
    assert gone.status_code == 200
    assert (
        await user.client.get(f"/api/webhooks/{hook['id']}", headers=user.auth)
    ).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (
            {"url": "https://x.example.com", "events": ["sms:teleported"]},
            400,
            'events[0]: unknown event "sms:teleported"',
        ),
        ({"url": "https://x.example.com", "events": []}, 400, "events: give at least one event"),
        ({"url": "ftp://x.example.com", "events": ["sms:sent"]}, 400, "url:"),
        ({"url": "not a url", "events": ["sms:sent"]}, 400, "url:"),
        (
            {"url": "https://x.example.com", "events": ["sms:sent"], "format": "xml"},
            400,
            "format: must be one of native, standard, android",
        ),
        (
            {
                "url": "https://x.example.com",
                "events": ["sms:sent"],
                "deviceId": "cxxxxxxxxxxxxxxxxxxxxxxxx",
            },
            404,
            "device not found",
        ),
    ],
)
async def test_invalid_webhooks(make_user, body, status, text) -> None:
    user = await make_user()
    resp = await user.client.post("/api/webhooks", json=body, headers=user.auth)
    assert resp.status_code == status, resp.text
    assert text in resp.json()["error"]
    assert (await user.client.get("/api/webhooks", headers=user.auth)).json()["data"] == []


SSRF = [
    "http://127.0.0.1/hook",
    "http://[::1]/hook",
    "http://10.0.0.1/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::ffff:127.0.0.1]/hook",
    "http://2130706433/hook",  # 127.0.0.1 in decimal
    "http://0177.0.0.1/hook",  # 127.0.0.1 in octal
    "http://localhost/hook",  # a name that resolves to loopback
    "http://100.64.0.1/hook",
    "http://[fc00::1]/hook",
    "http://[64:ff9b::a9fe:a9fe]/hook",
    "http://0.0.0.0/hook",
]


async def test_private_targets_are_refused_unless_allowed(settings) -> None:
    strict = create_app(settings.model_copy(update={"webhooks_allow_private": False}))
    transport = httpx.ASGITransport(app=strict, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            signup = await http.post(
                "/api/auth/signup",
                json={"email": "ssrf-check@example.com", "password": "correct horse battery"},
            )
            assert signup.status_code in (201, 409)
            if signup.status_code == 409:
                signup = await http.post(
                    "/api/auth/login",
                    json={"email": "ssrf-check@example.com", "password": "correct horse battery"},
                )
            csrf = {"X-CSRF-Token": signup.json()["csrfToken"]}
            for url in SSRF:
                resp = await http.post(
                    "/api/webhooks", json={"url": url, "events": ["sms:sent"]}, headers=csrf
                )
                assert resp.status_code == 400, (url, resp.text)
                assert resp.json()["code"] == "invalid_url"
                if "localhost" not in url and "::" not in url:  # not resolved, or not mapped
                    assert "SMSGATE_WEBHOOKS_ALLOW_PRIVATE=true" in resp.json()["error"], url
            assert (await http.get("/api/webhooks")).json()["data"] == []
    finally:
        await strict.state.webhook_http.aclose()
        await strict.state.db.dispose()


async def test_account_b_cannot_touch_a_webhooks(make_user) -> None:
    a, b = await make_user(), await make_user()
    hook = (
        await a.client.post(
            "/api/webhooks",
            json={"url": "https://x.example.com", "events": ["sms:sent"]},
            headers=a.auth,
        )
    ).json()
    test = (await a.client.post(f"/api/webhooks/{hook['id']}/test", headers=a.auth)).json()
    for method, path, body in (
        ("GET", f"/api/webhooks/{hook['id']}", None),
        ("GET", f"/api/webhooks/{hook['id']}/secret", None),
        ("PATCH", f"/api/webhooks/{hook['id']}", {"enabled": False}),
        ("DELETE", f"/api/webhooks/{hook['id']}", None),
        ("POST", f"/api/webhooks/{hook['id']}/rotate-secret", None),
        ("GET", f"/api/webhooks/{hook['id']}/deliveries", None),
        ("POST", f"/api/webhooks/{hook['id']}/deliveries/{test['deliveryId']}/retry", None),
        ("POST", f"/api/webhooks/{hook['id']}/test", None),
        ("POST", f"/api/webhooks/{hook['id']}/replay", {"since": "2020-01-01T00:00:00Z"}),
    ):
        resp = await b.client.request(method, path, json=body, headers=b.auth)
        assert resp.status_code == 404, (method, path, resp.text)
    assert (await b.client.get("/api/webhooks", headers=b.auth)).json()["data"] == []
    still = (await a.client.get(f"/api/webhooks/{hook['id']}", headers=a.auth)).json()
    assert still["enabled"] is True
