"""Device management API: create, list, pairing, settings validation, logs, delete."""

from __future__ import annotations

import pytest

from smsgate.agents.phone import DeviceClient, MobileError
from tests.factories import pair_phone


async def test_fresh_pairing_replaces_the_old_one(make_user) -> None:
    user = await make_user()
    created = (
        await user.client.post("/api/devices/android", json={"name": "x"}, headers=user.auth)
    ).json()
    old = created["pairing"]["token"]
    fresh = (
        await user.client.post(f"/api/devices/{created['id']}/pairing", headers=user.auth)
    ).json()
    assert fresh["token"] != old and fresh["qrSvg"].startswith("<svg")
    phone = DeviceClient("http://testserver/api/mobile/v1", http=user.client)
    with pytest.raises(MobileError):
        await phone.register(pairing_token=old)
    await phone.register(pairing_token=fresh["token"])
    assert phone.device_id == created["id"]


@pytest.mark.parametrize(
    ("patch", "text"),
    [
        ({"simSelectionMode": "Sometimes"}, "simSelectionMode: must be one of"),
        ({"limitPeriod": "PerWeek"}, "limitPeriod: must be one of"),
        ({"limitValue": -1}, "limitValue: must be greater than or equal to 0"),
        ({"limitPeriod": "PerHour"}, "limitValue must be at least 1 when limitPeriod"),
        ({"sendIntervalMin": 10, "sendIntervalMax": 5}, "sendIntervalMax must not be below"),
        ({"processingOrder": "RANDOM"}, "processingOrder: must be one of"),
        ({"pingIntervalSeconds": "often"}, "pingIntervalSeconds: must be an integer"),
        ({"cloudUrl": "https://evil.example"}, "cloudUrl: is not a known field"),
    ],
)
async def test_invalid_settings_are_400_and_change_nothing(make_user, patch, text) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    path = f"/api/devices/{phone.device_id}/settings"
    before = (await user.client.get(path, headers=user.auth)).json()
    resp = await user.client.patch(path, json=patch, headers=user.auth)
    assert resp.status_code == 400, resp.text
    assert text in resp.json()["error"]
    assert (await user.client.get(path, headers=user.auth)).json() == before


async def test_settings_defaults_patch_and_reset(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    path = f"/api/devices/{phone.device_id}/settings"
    defaults = (await user.client.get(path, headers=user.auth)).json()
    assert defaults["limitPeriod"] == "Disabled" and defaults["processingOrder"] == "LIFO"
    set_ = await user.client.patch(
        path, json={"limitPeriod": "PerDay", "limitValue": 500}, headers=user.auth
    )
    assert set_.json()["limitValue"] == 500
    reset = await user.client.patch(
        path, json={"limitPeriod": None, "limitValue": None}, headers=user.auth
    )
    assert reset.json() == defaults
    assert "messages" not in await phone.settings()


async def test_logs_filter_and_page(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    accepted = await phone.logs(
        [{"level": "warn", "message": f"battery low {i}"} for i in range(5)]
    )
    assert accepted == 5
    path = f"/api/devices/{phone.device_id}/logs"
    first = (await user.client.get(f"{path}?level=warn&limit=3", headers=user.auth)).json()
    assert len(first["data"]) == 3 and first["nextCursor"]
    rest = (
        await user.client.get(
            f"{path}?level=warn&limit=3&cursor={first['nextCursor']}", headers=user.auth
        )
    ).json()
    assert len(rest["data"]) == 2 and rest["nextCursor"] is None
    everything = (await user.client.get(path, headers=user.auth)).json()["data"]
    assert {e["event"] for e in everything} >= {"paired", "device"}
    bad = await user.client.get(f"{path}?level=loud", headers=user.auth)
    assert bad.status_code == 400 and bad.json()["field"] == "level"


async def test_device_routes_need_the_devices_scope(make_user) -> None:
    user = await make_user()
    reader = await user.client.post(
        "/api/keys", json={"name": "r", "scopes": ["messages:read"]}, headers=user.auth
    )
    headers = {"Authorization": f"Bearer {reader.json()['key']}"}
    assert (await user.client.get("/api/devices", headers=headers)).status_code == 403
    created = await user.client.post("/api/devices/android", json={"name": "x"}, headers=headers)
    assert created.status_code == 403


async def test_a_device_is_renamed_and_a_bad_name_changes_nothing(make_user, app) -> None:
    user = await make_user()
    made = await user.client.post("/api/devices/android", json={"name": "Caja"}, headers=user.auth)
    device_id = made.json()["id"]
    path = f"/api/devices/{device_id}"
    for bad in ({"name": "   "}, {"name": "x" * 129}, {}, {"name": 7}):
        refused = await user.client.patch(path, json=bad, headers=user.auth)
        assert refused.status_code == 400 and refused.json()["code"] == "validation_error", bad
        assert refused.json()["field"] == "name", refused.json()
    assert (await user.client.get(path, headers=user.auth)).json()["name"] == "Caja"
    renamed = await user.client.patch(path, json={"name": "  Caja 2 "}, headers=user.auth)
    assert renamed.status_code == 200 and renamed.json()["name"] == "Caja 2"
    listed = (await user.client.get("/api/devices", headers=user.auth)).json()["data"]
    assert [d["name"] for d in listed] == ["Caja 2"]
