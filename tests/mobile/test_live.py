"""Over real HTTP: SSE wake-ups, the simulated phone end to end, and the app's signed webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import httpx

from smsgate.agents.simulator import SimulatedPhone
from tests.events import listening, until
from tests.factories import pair_phone, send


async def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_sse_frames_wake_the_phone(make_user, live_server, app) -> None:
    user = await make_user()
    async with httpx.AsyncClient(timeout=10) as http:
        phone = await pair_phone(user, http=http, base=live_server)
        async with listening(phone, app) as frames:
            msg = (await send(user)).json()["id"]
            await until(lambda: _has(frames, "MessageEnqueued"))
            cancel = await user.client.post(f"/api/v1/messages/{msg}/cancel", headers=user.auth)
            assert cancel.json()["state"] == "cancelled"  # not pulled yet: cancelled at once
            second = (await send(user)).json()["id"]
            await phone.pull()
            await user.client.post(f"/api/v1/messages/{second}/cancel", headers=user.auth)
            await until(lambda: _has(frames, "MessageCancelled"))
            assert ("MessageCancelled", {"messageId": second}) in frames
            await user.client.patch(
                f"/api/devices/{phone.device_id}/settings",
                json={"limitValue": 3},
                headers=user.auth,
            )
            await until(lambda: _has(frames, "SettingsUpdated"))
            assert ("MessageEnqueued", None) in frames


async def test_event_stream_headers_and_keepalive(make_user, live_server) -> None:
    user = await make_user()
    async with httpx.AsyncClient(timeout=10) as http:
        phone = await pair_phone(user, http=http, base=live_server)
        async with http.stream(
            "GET",
            f"{live_server}/api/mobile/v1/events",
            headers={"Authorization": f"Bearer {phone.token}"},
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = []
            async for line in response.aiter_lines():
                lines.append(line)
                if line == ":keepalive":
                    break
        assert ":keepalive" in lines


def _has(frames, name: str) -> bool:
    return any(frame[0] == name for frame in frames)


async def test_simulated_phone_end_to_end(make_user, live_server) -> None:
    user = await make_user()
    async with httpx.AsyncClient(timeout=10) as http:
        client = await pair_phone(user, http=http, base=live_server)
        phone = SimulatedPhone(client, delivery_delay=0.05, send_delay=0.01, seed=1)
        running = asyncio.create_task(phone.run())
        try:
            await asyncio.wait_for(phone.connected.wait(), 10)
            started = time.monotonic()
            msg = (await send(user, phoneNumbers=["+5215555555555", "+12025550143"])).json()

            async def delivered() -> bool:
                got = await user.client.get(f"/api/v1/messages/{msg['id']}", headers=user.auth)
                return got.json()["state"] == "delivered"

            await _wait_for(delivered)
            assert time.monotonic() - started < 5  # woken over SSE, not by a 15-minute poll
            got = (await user.client.get(f"/api/v1/messages/{msg['id']}", headers=user.auth)).json()
            per_message = [h["state"] for h in got["history"] if "phoneNumber" not in h]
            assert per_message == ["processing", "sent", "delivered"]
            per_recipient = [
                h["state"] for h in got["history"] if h.get("phoneNumber") == "+12025550143"
            ]
            assert per_recipient == ["sent", "delivered"]
            # inbound from the simulated phone
            ids = await client.inbox(
                [{"phoneNumber": "+5215512345678", "message": "STOP", "id": "in-1"}]
            )
            again = await client.inbox(
                [{"phoneNumber": "+5215512345678", "message": "STOP", "id": "in-1"}]
            )
            assert ids == again  # recorded once
            inbound = (
                await user.client.get("/api/v1/messages?direction=in", headers=user.auth)
            ).json()["data"]
            assert [m["id"] for m in inbound] == ids
            assert inbound[0]["state"] == "received" and inbound[0]["sender"] == "+5215512345678"
            assert inbound[0]["message"] == "STOP"
        finally:
            running.cancel()


async def test_webhooks_signed_by_the_app_are_ingested_once(make_user, app) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    key = (await phone.settings())["webhooks"]["signing_key"]
    url = next(h["url"] for h in await phone.webhooks() if h["event"] == "sms:received")
    path = url.removeprefix("http://testserver")
    body = json.dumps(
        {
            "id": "Xq2b7Lm0",
            "webhookId": "smsgate-sms-received",
            "event": "sms:received",
            "deviceId": phone.device_id,
            "payload": {
                "messageId": "a41f09c2",
                "message": "¿Sigue disponible?",
                "sender": "+5215512345678",
                "phoneNumber": "+5215512345678",
                "simNumber": 1,
                "receivedAt": "2026-03-13T10:05:42.000+01:00",
            },
        },
        ensure_ascii=False,
    ).encode()

    def signed(content: bytes, stamp: str | None = None) -> dict[str, str]:
        stamp = stamp or str(int(time.time()))
        digest = hmac.new(key.encode(), content + stamp.encode(), hashlib.sha256).hexdigest()
        return {"X-Signature": digest, "X-Timestamp": stamp, "Content-Type": "application/json"}

    ok = await user.client.post(path, content=body, headers=signed(body))
    assert ok.status_code == 204, ok.text
    duplicate = await user.client.post(path, content=body, headers=signed(body))
    assert duplicate.status_code == 204
    tampered = body.replace(b"disponible", b"DISPONIBLE")
    assert (await user.client.post(path, content=tampered, headers=signed(body))).status_code == 401
    old = signed(body, str(int(time.time()) - 3600))
    assert (await user.client.post(path, content=body, headers=old)).status_code == 401
    inbound = (await user.client.get("/api/v1/messages?direction=in", headers=user.auth)).json()[
        "data"
    ]
    assert len(inbound) == 1 and inbound[0]["message"] == "¿Sigue disponible?"
    assert inbound[0]["sender"] == "+5215512345678" and inbound[0]["simNumber"] == 1
    detail = (
        await user.client.get(f"/api/v1/messages/{inbound[0]['id']}", headers=user.auth)
    ).json()
    assert detail["history"][0]["at"] == "2026-03-13T09:05:42.000Z"


async def test_the_simulate_command_pairs_and_delivers(make_user, live_server, tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    user = await make_user()
    created = await user.client.post(
        "/api/devices/android", json={"name": "sim"}, headers=user.auth
    )
    token = created.json()["pairing"]["token"]
    command = [
        str(Path(sys.executable).parent / "smsgate"),
        "device",
        "simulate",
        "--server",
        live_server,
        "--token",
        token,
        "--delivery-delay",
        "0.05",
    ]
    log = (tmp_path / "simulate.log").open("wb")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        device_id = created.json()["id"]

        async def online() -> bool:
            got = await user.client.get(f"/api/devices/{device_id}", headers=user.auth)
            return got.json()["status"] == "online"

        await _wait_for(online, 30)
        msg = (await send(user)).json()["id"]

        async def delivered() -> bool:
            got = await user.client.get(f"/api/v1/messages/{msg}", headers=user.auth)
            return got.json()["state"] == "delivered"

        await _wait_for(delivered, 30)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    assert f"device {created.json()['id']}" in (tmp_path / "simulate.log").read_text()
