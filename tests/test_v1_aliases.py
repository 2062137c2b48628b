"""The reference's base is `…/api/v1`: every `/api/<resource>` is served under it too."""

from __future__ import annotations


async def test_every_native_resource_answers_under_api_v1(make_user, app) -> None:
    user = await make_user()
    for path in (
        "/api/devices",
        "/api/webhooks",
        "/api/keys",
        "/api/billing",
        "/api/account/settings",
    ):
        plain = await user.client.get(path, headers=user.auth)
        aliased = await user.client.get(path.replace("/api/", "/api/v1/"), headers=user.auth)
        assert plain.status_code == aliased.status_code == 200, (path, aliased.text)
        assert aliased.json() == plain.json()
    created = await user.client.post(
        "/api/v1/webhooks",
        json={"url": "https://hooks.example.com/in", "events": ["sms:received"]},
        headers=user.auth,
    )
    assert created.status_code == 201, created.text
    hook_id = created.json()["id"]
    shown = await user.client.get(f"/api/webhooks/{hook_id}", headers=user.auth)
    assert shown.json()["url"] == "https://hooks.example.com/in"
    gone = await user.client.delete(f"/api/v1/webhooks/{hook_id}", headers=user.auth)
    assert gone.status_code in (200, 204)
    bad = await user.client.post("/api/v1/devices/android", json={}, headers=user.auth)
    assert (bad.status_code, bad.json()["field"]) == (400, "name")  # the same validation
    # the native v1 routes are themselves, and an unknown path is a 404 that says where to look
    assert (await user.client.get("/api/v1/messages", headers=user.auth)).status_code == 200
    missing = await user.client.get("/api/v1/nothing-here", headers=user.auth)
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "no such endpoint; the API's reference is at /docs",
        "code": "not_found",
    }
    unknown = await user.client.get("/api/v1/devices/cnotadevice000000000000", headers=user.auth)
    assert unknown.status_code == 404 and unknown.json()["error"] == "device not found"
