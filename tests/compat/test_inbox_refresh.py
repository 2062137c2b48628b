"""POST /inbox/refresh: the request checked, and the phones asked in the app's own terms."""

from __future__ import annotations

import httpx

from tests.events import listening, until
from tests.factories import PASSWORD, pair_phone

BASE = "/api/3rdparty/v1"


async def test_bad_ranges_are_refused_and_nothing_is_asked(make_user) -> None:
    user = await make_user()
    basic = httpx.BasicAuth(user.email, PASSWORD)
    cases = [
        ({"until": "2026-11-02T00:00:00Z"}, "since"),
        ({"since": "yesterday", "until": "2026-11-02T00:00:00Z"}, "since"),
        ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "until"),
        (
            {
                "since": "2026-11-01T00:00:00Z",
                "until": "2026-11-02T00:00:00Z",
                "messageTypes": ["X"],
            },
            "messageTypes",
        ),
    ]
    for body, field in cases:
        refused = await user.client.post(f"{BASE}/inbox/refresh", json=body, auth=basic)
        assert refused.status_code == 400, (body, refused.text)
        assert field in refused.json()["message"]


async def test_the_phone_is_asked_with_rfc3339_times(make_user, live_server, app) -> None:
    user = await make_user()
    async with httpx.AsyncClient(timeout=10) as http:
        phone = await pair_phone(user, http=http, base=live_server)
        async with listening(phone, app) as frames:
            body = {
                "since": "2026-11-01T00:00:00",  # zone-less, as the Python client writes it
                "until": "2026-11-02T06:00:00+01:00",
                "messageTypes": ["SMS", "MMS"],
                "webhookDelivery": "Disabled",
            }
            asked = await http.post(
                f"{live_server}{BASE}/inbox/refresh",
                json=body,
                auth=httpx.BasicAuth(user.email, PASSWORD),
            )
            assert asked.status_code == 202, asked.text
            await until(lambda: any(name == "MessagesExportRequested" for name, _ in frames))
            data = next(d for name, d in frames if name == "MessagesExportRequested")
            assert data == {
                "since": "2026-11-01T00:00:00.000Z",
                "until": "2026-11-02T05:00:00.000Z",
                "messageTypes": "SMS,MMS",
                "triggerWebhooks": "false",
            }


async def test_wrong_types_in_bodies_are_400s_naming_the_field(make_user) -> None:
    """Found by the API fuzzer once these bodies were described: each was a 500."""
    user = await make_user()
    basic = httpx.BasicAuth(user.email, PASSWORD)
    cases = [
        ("/auth/token", {"scopes": [{}], "ttl": 3600}, "scopes"),
        (
            "/messages",
            {
                "textMessage": {"text": "hola"},
                "phoneNumbers": ["+5215555555555"],
                "withDeliveryReport": {},
            },
            "withDeliveryReport",
        ),
        (
            "/webhooks",
            {"url": "https://example.com/in", "event": "sms:received", "deviceId": False},
            "deviceId",
        ),
        (
            "/inbox/refresh",
            {"since": "2026-11-01T00:00:00Z", "until": "2026-11-02T00:00:00Z", "deviceId": 7},
            "deviceId",
        ),
    ]
    for path, body, field in cases:
        refused = await user.client.post(f"{BASE}{path}", json=body, auth=basic)
        assert refused.status_code == 400, (path, refused.text)
        assert field in refused.json()["message"], (path, refused.text)
    listed = await user.client.get(f"{BASE}/messages", auth=basic)
    assert listed.json() == []  # nothing was stored
