"""A web line end to end: the real bridge over real HTTP (mobile protocol + SSE) with a
simulated WhatsApp session: QR -> connected -> send -> receipt -> inbound -> disconnected."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from smsgate.agents.phone import DeviceClient, MobileError
from smsgate.agents.whatsapp_web import Bridge, SimulatedSession
from smsgate.whatsapp.lines import Pacer
from tests.factories import send
from tests.webhooks.receiver import receiving
from tests.webhooks.test_delivery import _hook, deliver


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_pairing_qr_connected_send_receive_disconnect(make_user, app, live_server) -> None:
    user = await make_user()
    resp = await user.client.post(
        "/api/devices/whatsapp", json={"name": "Recepción", "provider": "web"}, headers=user.auth
    )
    assert resp.status_code == 201, resp.text
    line = resp.json()
    assert line["whatsapp"]["session"] == "pairing" and line["pairing"]["token"].startswith("pt_")
    qr_url = f"/api/devices/{line['id']}/qr"
    early = await user.client.get(qr_url, headers=user.auth)
    assert early.status_code == 404 and early.json()["code"] == "qr_not_available"

    async def device() -> dict:
        return (await user.client.get(f"/api/devices/{line['id']}", headers=user.auth)).json()

    client = DeviceClient(live_server + "/api/mobile/v1")
    await client.register(pairing_token=line["pairing"]["token"], name="smsgate/whatsapp")
    session = SimulatedSession(phone="+5215500001111")
    bridge = Bridge(client, session, pacer=Pacer(per_recipient=0), poll_interval=0.5)
    async with receiving() as receiver:
        await _hook(user, receiver.url, ["device:online", "device:offline", "whatsapp:delivered"])
        task = asyncio.get_running_loop().create_task(bridge.run())
        try:
            await until(lambda: _ok(user, qr_url))
            shown = (await user.client.get(qr_url, headers=user.auth)).json()
            assert shown["qr"].startswith("2@SIMULATED") and shown["qrSvg"].startswith("<svg")
            svg = await user.client.get(qr_url, params={"format": "svg"}, headers=user.auth)
            assert svg.headers["content-type"] == "image/svg+xml"
            assert (await device())["status"] == "pending"

            await session.scan()
            await until(lambda: _state(device, "connected"))
            linked = await device()
            assert linked["status"] == "online"
            assert linked["whatsapp"]["phoneNumber"] == "+5215500001111"
            gone = await user.client.get(qr_url, headers=user.auth)
            assert gone.status_code == 404  # linked: no QR to show

            sms = (await send(user)).json()  # never handed to a WhatsApp line
            sent = (await send(user, channel="whatsapp", phoneNumbers=["+5215512345678"])).json()
            await until(lambda: _message_state(user, sent["id"], "delivered"))
            assert [(m.to, m.text) for m in session.sent] == [("+5215512345678", "Hola mundo")]
            assert await _message_state(user, sms["id"], "processing")

            await session.incoming("5215512345678", "¿Tienen envío?", name="Luis")
            inbox = (await user.client.get("/api/v1/inbox", headers=user.auth)).json()["data"]
            assert [(m["sender"], m["message"], m["channel"]) for m in inbox] == [
                ("+5215512345678", "¿Tienen envío?", "whatsapp")
            ]
            threads = (await user.client.get("/api/conversations", headers=user.auth)).json()
            assert [(t["contact"], t["channel"], t["displayName"]) for t in threads["data"]] == [
                ("+5215512345678", "whatsapp", "Luis")
            ]

            await session.drop()
            await until(lambda: _state(device, "disconnected"))
            assert (await device())["status"] == "offline"
            waiting = (await send(user, channel="whatsapp", phoneNumbers=["+5215587654321"])).json()
            await asyncio.sleep(1.0)  # a poll or two: nothing is handed to a dropped session
            assert await _message_state(user, waiting["id"], "processing")
            assert len(session.sent) == 1

            await session.log_out()
            await until(lambda: _state(device, "logged_out"))
            await deliver(app)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, MobileError):
                await task
            await client.aclose()
    events = sorted(r.headers["x-smsgw-event"] for r in receiver.requests)
    assert events == ["device:offline", "device:online", "whatsapp:delivered"]
    logs = (await user.client.get(f"/api/devices/{line['id']}/logs", headers=user.auth)).json()
    seen = [entry["event"] for entry in logs["data"]]
    for event in ("whatsapp_connected", "whatsapp_disconnected", "whatsapp_logged_out"):
        assert event in seen


async def _ok(user, url: str) -> bool:
    return (await user.client.get(url, headers=user.auth)).status_code == 200


async def _state(device: Callable[[], Awaitable[dict]], state: str) -> bool:
    return (await device())["whatsapp"]["session"] == state


async def _message_state(user, message_id: str, state: str) -> bool:
    resp = await user.client.get(f"/api/v1/messages/{message_id}", headers=user.auth)
    return bool(resp.json()["state"] == state)


async def test_session_reports_are_checked(make_user, live_server) -> None:
    user = await make_user()
    line = (
        await user.client.post(
            "/api/devices/whatsapp", json={"name": "w", "provider": "web"}, headers=user.auth
        )
    ).json()
    client = DeviceClient(live_server + "/api/mobile/v1")
    await client.register(pairing_token=line["pairing"]["token"])
    try:
        for body, field in [({"state": "awake"}, "state"), ({"state": "pairing", "qr": 5}, "qr")]:
            try:
                await client.call("POST", "/whatsapp/session", body)
            except MobileError as exc:
                assert exc.status == 400 and field in str(exc)
            else:
                raise AssertionError("accepted a bad session report")
        statuses = await client.call("POST", "/whatsapp/statuses", [{"providerMessageId": "x"}])
        assert statuses == {"applied": 0}
        # a NUL names no message: skipped, never a refusal of the rest (PostgreSQL cannot even
        # compare such text, as with state reports)
        odd = [{"providerMessageId": "x\x00", "state": "Failed", "error": "e\x00"}]
        assert await client.call("POST", "/whatsapp/statuses", odd) == {"applied": 0}
    finally:
        await client.aclose()
    # an Android phone's token cannot report a WhatsApp session
    phone_line = await user.client.post(
        "/api/devices/android", json={"name": "p"}, headers=user.auth
    )
    phone = DeviceClient(live_server + "/api/mobile/v1")
    await phone.register(pairing_token=phone_line.json()["pairing"]["token"])
    try:
        await phone.call("POST", "/whatsapp/session", {"state": "connected"})
    except MobileError as exc:
        assert exc.status == 409
    else:
        raise AssertionError("an Android phone reported a WhatsApp session")
    finally:
        await phone.aclose()


async def test_a_dropped_session_gives_back_what_it_had_not_started(make_user, live_server) -> None:
    user = await make_user()
    lines = []
    for name in ("a", "b"):
        made = await user.client.post(
            "/api/devices/whatsapp", json={"name": name, "provider": "web"}, headers=user.auth
        )
        client = DeviceClient(live_server + "/api/mobile/v1")
        await client.register(pairing_token=made.json()["pairing"]["token"])
        lines.append(client)
    first, second = lines
    try:
        await first.call("POST", "/whatsapp/session", {"state": "connected"})
        sent = (await send(user, channel="whatsapp", phoneNumbers=["+5215512345678"])).json()
        assert [m["id"] for m in await first.pull()] == [sent["id"]]  # taken, not started
        await second.call("POST", "/whatsapp/session", {"state": "connected"})
        assert await second.pull() == []  # it belongs to the first line
        await first.call("POST", "/whatsapp/session", {"state": "disconnected"})
        assert [m["id"] for m in await second.pull()] == [sent["id"]]
        assert await first.pull() == []  # a dropped session is handed nothing
    finally:
        for client in lines:
            await client.aclose()


async def test_the_bridge_command_with_simulate_links_by_itself(
    make_user, live_server, tmp_path
) -> None:
    """`smsgate whatsapp bridge --simulate` said it links after 5 s, and showed a new QR code
    every 5 s instead: the command, as a user runs it, links and carries a message."""
    user = await make_user()
    made = await user.client.post(
        "/api/devices/whatsapp", json={"name": "Mostrador", "provider": "web"}, headers=user.auth
    )
    line = made.json()

    async def device() -> dict:
        return (await user.client.get(f"/api/devices/{line['id']}", headers=user.auth)).json()

    command = [
        str(Path(sys.executable).parent / "smsgate"),
        "whatsapp",
        "bridge",
        "--simulate",
        "--server",
        live_server,
        "--token",
        line["pairing"]["token"],
        "--state-dir",
        str(tmp_path / "bridge"),
    ]
    bridge = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        await until(lambda: _state(device, "connected"), timeout=30)
        assert (await device())["status"] == "online"
        sent = (await send(user, channel="whatsapp", phoneNumbers=["+5215512345678"])).json()
        await until(lambda: _message_state(user, sent["id"], "delivered"), timeout=30)
    finally:
        bridge.terminate()
        output = (await bridge.communicate())[0].decode()
    assert f"paired: line {line['id']}" in output
