"""Input that used to answer 500 (found by a fuzzer and a malformed-input run): each is a 4xx
with the error body now, and stores nothing."""

from __future__ import annotations

import httpx

from tests.factories import PASSWORD, pair_phone

DEEP = b"[" * 50_000 + b"]" * 50_000


async def test_deeply_nested_json_is_a_400_on_every_route_that_reads_by_hand(
    make_user, app
) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    created = await user.client.post("/api/devices/android", json={"name": "x"}, headers=user.auth)
    pairing = created.json()["pairing"]["token"]
    device = {"Authorization": f"Bearer {phone.token}", "Content-Type": "application/json"}
    for method, path, headers, shape in (
        ("POST", "/api/mobile/v1/device", {"Authorization": f"Bearer {pairing}"}, "error"),
        ("PATCH", "/api/mobile/v1/message", device, "error"),
        ("POST", "/api/mobile/v1/inbox", device, "error"),
        ("POST", "/api/3rdparty/v1/messages", {}, "message"),
    ):
        answer = await user.client.request(
            method,
            path,
            content=DEEP,
            headers={"Content-Type": "application/json", **headers},
            auth=httpx.BasicAuth(user.email, PASSWORD) if shape == "message" else None,
        )
        assert answer.status_code == 400, (path, answer.status_code, answer.text[:200])
        assert "nests too deeply" in answer.json()[shape], (path, answer.text[:200])


async def test_a_lone_surrogate_is_refused_before_it_is_queued(make_user) -> None:
    user = await make_user()
    body = '{"phoneNumbers": ["+5215555555555"], "textMessage": {"text": "\\ud800x"}}'
    answer = await user.client.post(
        "/api/3rdparty/v1/messages",
        content=body.encode(),
        headers={"Content-Type": "application/json"},
        auth=httpx.BasicAuth(user.email, PASSWORD),
    )
    assert answer.status_code == 400, answer.text
    assert "lone UTF-16 surrogate" in answer.json()["message"]
    ours = await user.client.post(
        "/api/v1/send",
        content=b'{"phoneNumbers": ["+5215555555555"], "message": "\\udfffx"}',
        headers={"Content-Type": "application/json", **user.auth},
    )
    assert ours.status_code == 400, ours.text  # pydantic's JSON parser refuses it as JSON
    listed = await user.client.get("/api/v1/messages", headers=user.auth)
    assert listed.json()["data"] == []


async def test_control_characters_in_a_webhook_url_are_a_400(make_user) -> None:
    user = await make_user()
    auth = httpx.BasicAuth(user.email, PASSWORD)
    for url in (
        "https://hooks.example.com/\x00a",
        "https://hooks.example.com/\x07",
        "https://a\x01.example.com/",
    ):
        answer = await user.client.post(
            "/api/3rdparty/v1/webhooks", json={"url": url, "event": "sms:received"}, auth=auth
        )
        assert answer.status_code == 400, (url, answer.text)
        assert set(answer.json()) == {"message"}
    listed = await user.client.get("/api/3rdparty/v1/webhooks", auth=auth)
    assert listed.json() == []
