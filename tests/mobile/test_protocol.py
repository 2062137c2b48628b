"""The Android app's exact calls and payloads against the mobile API."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

from smsgate.agents.phone import USER_AGENT, DeviceClient, MobileError
from tests.factories import PASSWORD, pair_phone, send

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
APP_EVENTS = {
    "sms:received",
    "sms:sent",
    "sms:delivered",
    "sms:failed",
    "sms:cancelled",
    "sms:data-received",
    "system:ping",
    "mms:received",
    "mms:downloaded",
    "app:started",
}


async def test_pairing_with_the_private_token_field(make_user) -> None:
    user = await make_user()
    created = await user.client.post(
        "/api/devices/android", json={"name": "Caja 1"}, headers=user.auth
    )
    assert created.status_code == 201
    device = created.json()
    assert device["status"] == "pending" and device["type"] == "android"
    pairing = device["pairing"]
    assert pairing["serverUrl"] == "http://testserver/api/mobile/v1"
    assert pairing["token"] and re.fullmatch(r"[0-9]{10}", pairing["code"])
    assert pairing["qrSvg"].startswith("<svg")

    # the app's exact registration call
    raw = await user.client.post(
        "/api/mobile/v1/device",
        content=b'{"name":"samsung/beyond0lte","simCards":[{"slotIndex":0,"simNumber":1,'
        b'"phoneNumber":"********4567","carrierName":"****bile","iccid":"****************0123"}]}',
        headers={
            "Authorization": f"Bearer {pairing['token']}",
            "User-Agent": "me.capcom.smsgateway/1.55.2",
            "Content-Type": "application/json; charset=UTF-8",
        },
    )
    assert raw.status_code == 201, raw.text
    body = raw.json()
    assert set(body) == {"id", "token", "login"}  # no password: the account existed
    assert body["id"] == device["id"] and body["login"] == user.email
    shown = (await user.client.get(f"/api/devices/{device['id']}", headers=user.auth)).json()
    assert shown["status"] == "online" and shown["appVersion"] == "1.55.2"
    assert shown["simCards"][0]["carrierName"] == "****bile"
    assert ISO_MS.match(shown["lastSeenAt"])

    # the pairing token is single use
    again = DeviceClient("http://testserver/api/mobile/v1", http=user.client)
    try:
        await again.register(pairing_token=pairing["token"])
        raise AssertionError("a used pairing token registered again")
    except MobileError as exc:
        assert exc.status == 401


async def test_patch_device_and_the_401_rule(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    await phone.update(push_token="fcm-token", sim_cards=[{"slotIndex": 1, "simNumber": 2}])
    mismatch = await user.client.patch(
        "/api/mobile/v1/device",
        json={"id": "cxxxxxxxxxxxxxxxxxxxxxxxx"},
        headers={"Authorization": f"Bearer {phone.token}", "User-Agent": USER_AGENT},
    )
    assert mismatch.status_code == 403  # never 401: that would make the app re-register
    unknown = await user.client.patch(
        "/api/mobile/v1/device",
        json={"id": phone.device_id},
        headers={"Authorization": "Bearer dt_unknown"},
    )
    assert unknown.status_code == 401
    # GET /device works without authentication
    anonymous = await user.client.get("/api/mobile/v1/device")
    assert anonymous.status_code == 200 and "externalIp" in anonymous.json()


async def test_registration_with_login_and_with_codes(make_user) -> None:
    user = await make_user()
    base = "http://testserver/api/mobile/v1"
    by_password = DeviceClient(base, http=user.client)
    registration = await by_password.register(login=user.email, password=PASSWORD)
    assert registration.login == user.email and registration.password is None
    wrong = DeviceClient(base, http=user.client)
    try:
        await wrong.register(login=user.email, password="not the password")
        raise AssertionError("wrong password registered")
    except MobileError as exc:
        assert exc.status == 401

    code = await by_password.login_code(user.email, PASSWORD)
    assert re.fullmatch(r"[0-9]{6}", code["code"])  # the app's code field takes digits only
    assert ISO_MS.match(code["validUntil"])
    by_code = DeviceClient(base, http=user.client)
    await by_code.register(code=code["code"])
    reuse = DeviceClient(base, http=user.client)
    try:
        await reuse.register(code=code["code"])
        raise AssertionError("a login code worked twice")
    except MobileError as exc:
        assert exc.status == 401

    created = await user.client.post(
        "/api/devices/android", json={"name": "by code"}, headers=user.auth
    )
    pairing_code = created.json()["pairing"]["code"]
    by_pairing_code = DeviceClient(base, http=user.client)
    paired = await by_pairing_code.register(code=pairing_code)
    assert paired.id == created.json()["id"]
    listed = (await user.client.get("/api/devices", headers=user.auth)).json()["data"]
    assert len(listed) == 3 and all(d["status"] == "online" for d in listed)

    anonymous = await user.client.post("/api/mobile/v1/device", json={"name": "x"})
    assert anonymous.status_code == 401


async def test_pulled_messages_have_the_app_shape(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    text = (await send(user, message="Tu código es 4711", ttl=600, simNumber=2)).json()
    data = (await send(user, channel="data", message="SGVsbG8=", port=53739, priority=100)).json()
    pulled = await phone.pull("lifo")
    assert [m["id"] for m in pulled] == [data["id"], text["id"]]  # priority first
    as_data, as_text = pulled
    assert as_data["dataMessage"] == {"data": "SGVsbG8=", "port": 53739}
    assert "textMessage" not in as_data and "message" not in as_data
    assert as_text["textMessage"] == {"text": "Tu código es 4711"}
    assert as_text["message"] == "Tu código es 4711"
    assert as_text["phoneNumbers"] == ["+5215555555555"]
    assert as_text["simNumber"] == 2 and as_text["state"] == "Pending"
    assert as_text["withDeliveryReport"] is True and as_text["isEncrypted"] is False
    assert ISO_MS.match(as_text["validUntil"]) and ISO_MS.match(as_text["createdAt"])
    assert "ttl" not in as_text and "deviceId" not in as_text
    assert all(v is not None for m in pulled for v in m.values())  # absent, never null
    # not acknowledged yet: the same messages come back
    assert [m["id"] for m in await phone.pull("fifo")] == [data["id"], text["id"]]
    raw = await user.client.get(
        "/api/mobile/v1/messages?order=fifo", headers={"Authorization": f"Bearer {phone.token}"}
    )
    assert raw.status_code == 200 and len(raw.json()) == 2


async def test_fifo_and_lifo_order(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    ids = [(await send(user, message=f"m{i}")).json()["id"] for i in range(3)]
    assert [m["id"] for m in await phone.pull("fifo")] == ids
    assert [m["id"] for m in await phone.pull("lifo")] == list(reversed(ids))
    bad = await user.client.get(
        "/api/mobile/v1/message?order=random", headers={"Authorization": f"Bearer {phone.token}"}
    )
    assert bad.status_code == 400


async def test_state_reports_with_a_states_map(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    msg = (await send(user, phoneNumbers=["+5215555555555", "+525512345678"])).json()
    await phone.pull()
    numbers = ["+5215555555555", "+525512345678"]
    t0 = datetime(2026, 3, 13, 9, 0, 1, 120000, tzinfo=UTC)
    # the app's exact body: an array with one element, phone-local times with an offset
    raw = await user.client.patch(
        "/api/mobile/v1/message",
        content=(
            '[{"id":"MESSAGE_ID","state":"Processed","recipients":[{"phoneNumber":"+5215555555555",'
            '"state":"Processed"},{"phoneNumber":"+525512345678","state":"Processed"}],'
            '"states":{"Processed":"2026-03-13T10:00:01.120+01:00"}}]'
        )
        .replace("MESSAGE_ID", msg["id"])
        .encode(),
        headers={"Authorization": f"Bearer {phone.token}", "Content-Type": "application/json"},
    )
    assert raw.status_code == 204
    assert await phone.pull() == []  # acknowledged: no longer handed out
    await phone.report(
        msg["id"],
        "Sent",
        [(n, "Sent", None) for n in numbers],
        {"Processed": t0, "Sent": t0 + timedelta(seconds=2)},
    )
    await phone.report(
        msg["id"],
        "Sent",
        [(numbers[0], "Delivered", None), (numbers[1], "Failed", "Delivery result: 64")],
        {"Delivered": t0 + timedelta(seconds=5)},
    )
    got = (await user.client.get(f"/api/v1/messages/{msg['id']}", headers=user.auth)).json()
    assert got["state"] == "delivered"  # delivered to one, failed for the other
    assert {r["phoneNumber"]: r["state"] for r in got["recipients"]} == {
        numbers[0]: "delivered",
        numbers[1]: "failed",
    }
    assert got["recipients"][1]["error"] == "Delivery result: 64"
    sent_times = [h["at"] for h in got["history"] if h["state"] == "sent" and "phoneNumber" in h]
    assert sent_times == ["2026-03-13T09:00:03.120Z"] * 2  # the phone's clock, in UTC
    # duplicates and late, older reports change nothing
    before = got["history"]
    await phone.report(msg["id"], "Sent", [(n, "Sent", None) for n in numbers])
    await phone.report(msg["id"], "Processed", [(n, "Processed", None) for n in numbers])
    again = (await user.client.get(f"/api/v1/messages/{msg['id']}", headers=user.auth)).json()
    assert again["history"] == before and again["state"] == "delivered"
    # unknown ids and junk are skipped with 204, as the app expects
    junk = await user.client.patch(
        "/api/mobile/v1/message",
        json=[{"id": "nope", "state": "Sent"}, 5, {"x": 1}],
        headers={"Authorization": f"Bearer {phone.token}"},
    )
    assert junk.status_code == 204


async def test_settings_and_webhooks_shapes(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    first = await phone.settings()
    assert set(first) == {"webhooks"} and len(first["webhooks"]["signing_key"]) >= 16
    device = phone.device_id
    patched = await user.client.patch(
        f"/api/devices/{device}/settings",
        json={
            "limitPeriod": "PerMinute",
            "limitValue": 10,
            "simSelectionMode": "RoundRobin",
            "sendIntervalMin": 1,
            "sendIntervalMax": 3,
            "processingOrder": "FIFO",
            "pingIntervalSeconds": 60,
        },
        headers=user.auth,
    )
    assert patched.status_code == 200, patched.text
    sections = await phone.settings()
    assert sections["messages"] == {
        "limit_period": "PerMinute",
        "limit_value": 10,
        "sim_selection_mode": "RoundRobin",
        "send_interval_min": 1,
        "send_interval_max": 3,
        "processing_order": "FIFO",
    }
    assert sections["ping"] == {"interval_seconds": 60}
    assert "gateway" not in sections and None not in sections.values()
    assert sections["webhooks"]["signing_key"] == first["webhooks"]["signing_key"]
    hooks = await phone.webhooks()
    assert hooks and all(set(h) == {"id", "url", "event"} for h in hooks)
    assert {h["event"] for h in hooks} <= APP_EVENTS
    assert all(h["url"].endswith(f"/api/mobile/v1/ingest/{device}") for h in hooks)


async def test_password_change_from_the_phone(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    try:
        await phone.change_password("wrong current password", "a brand new passphrase")
        raise AssertionError("wrong current password accepted")
    except MobileError as exc:
        assert exc.status == 401
    await phone.change_password(PASSWORD, "a brand new passphrase")
    pair = base64.b64encode(f"{user.email}:a brand new passphrase".encode()).decode()
    code = await user.client.get(
        "/api/mobile/v1/user/code", headers={"Authorization": f"Basic {pair}"}
    )
    assert code.status_code == 200


async def test_open_registration_only_when_the_operator_enables_it(settings) -> None:
    import httpx

    from smsgate.app import create_app

    for shared, header, expected in (
        ("", None, 201),
        ("s3cret-shared-token", None, 401),
        ("s3cret-shared-token", "Bearer s3cret-shared-token", 201),
        ("s3cret-shared-token", "Bearer wrong", 401),
    ):
        app = create_app(
            settings.model_copy(
                update={"mobile_open_registration": True, "mobile_registration_token": shared}
            )
        )
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                headers = {"Authorization": header} if header else {}
                resp = await http.post(
                    "/api/mobile/v1/device", json={"name": "xiaomi/redmi"}, headers=headers
                )
                assert resp.status_code == expected, (shared, header, resp.text)
                if expected == 201:
                    body = resp.json()
                    assert set(body) == {"id", "token", "login", "password"}
                    phone = DeviceClient("http://testserver/api/mobile/v1", http=http)
                    code = await phone.login_code(body["login"], body["password"])
                    assert code["code"]
        finally:
            await app.state.db.dispose()
