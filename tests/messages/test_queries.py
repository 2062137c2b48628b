"""GET /api/v1/messages filters and cursors, GET by id, and cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import add_device, send


async def test_cursor_pages_walk_newest_first_without_gaps(make_user) -> None:
    user = await make_user()
    sent = [(await send(user, message=f"m{i}")).json()["id"] for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        url = "/api/v1/messages?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await user.client.get(url, headers=user.auth)).json()
        seen += [m["id"] for m in page["data"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(sent))


async def test_filters(make_user, app) -> None:
    user = await make_user()
    device_id = await add_device(app, user.account_id)
    to_device = (await send(user, deviceId=device_id)).json()["id"]
    to_number = (await send(user, phoneNumbers=["+525512345678"])).json()["id"]
    cancelled = (await send(user)).json()["id"]
    await user.client.post(f"/api/v1/messages/{cancelled}/cancel", headers=user.auth)

    async def ids(query: str) -> list[str]:
        resp = await user.client.get(f"/api/v1/messages?{query}", headers=user.auth)
        assert resp.status_code == 200, resp.text
        return [m["id"] for m in resp.json()["data"]]

    assert await ids(f"deviceId={device_id}") == [to_device]
    assert await ids("phoneNumber=%2B525512345678") == [to_number]
    assert await ids("phoneNumber=55%201234%205678") == [to_number]  # normalized like sends
    assert await ids("state=cancelled") == [cancelled]
    assert set(await ids("state=processing")) == {to_device, to_number}
    assert len(await ids("direction=out")) == 3
    assert await ids("direction=in") == []
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await ids(f"since={future}") == []
    assert len(await ids(f"since={past}&until={future}")) == 3


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("limit=0", "limit: must be greater than or equal to 1"),
        ("limit=101", "limit: must be less than or equal to 100"),
        ("limit=abc", "limit: must be an integer"),
        ("direction=sideways", 'direction: must be "in" or "out"'),
        ("state=lost", "state: must be one of"),
        ("cursor=nonsense", "cursor: is not a cursor this API returned"),
        ("since=yesterday", "since: must be an ISO-8601 date"),
        ("until=2026-01-01T00:00:00", "until: needs a time zone"),
        ("phoneNumber=123", 'phoneNumber: "123" is not a valid phone number'),
    ],
)
async def test_invalid_filters_are_400(make_user, query: str, text: str) -> None:
    user = await make_user()
    resp = await user.client.get(f"/api/v1/messages?{query}", headers=user.auth)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"].startswith(text), resp.json()


async def test_unknown_device_filter_is_404(make_user) -> None:
    user = await make_user()
    resp = await user.client.get(
        "/api/v1/messages?deviceId=cxxxxxxxxxxxxxxxxxxxxxxxx", headers=user.auth
    )
    assert resp.status_code == 404


async def test_cancel_moves_message_and_recipients_once(make_user) -> None:
    user = await make_user()
    msg = (await send(user, phoneNumbers=["+5215555555555", "+525512345678"])).json()
    resp = await user.client.post(f"/api/v1/messages/{msg['id']}/cancel", headers=user.auth)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["state"] == "cancelled"
    assert {r["state"] for r in body["recipients"]} == {"cancelled"}
    assert [h["state"] for h in body["history"] if "phoneNumber" not in h] == [
        "processing",
        "cancelled",
    ]
    again = await user.client.post(f"/api/v1/messages/{msg['id']}/cancel", headers=user.auth)
    assert again.status_code == 409
    assert again.json() == {
        "error": "this message can no longer be cancelled: it is cancelled",
        "code": "not_cancellable",
    }


async def test_unknown_message_is_404(make_user) -> None:
    user = await make_user()
    for path in ("/api/v1/messages/cnotamessage0000000000000", "/api/v1/messages/x"):
        resp = await user.client.get(path, headers=user.auth)
        assert resp.status_code == 404
        assert resp.json() == {"error": "message not found", "code": "not_found"}
