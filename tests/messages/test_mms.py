"""Channels are capabilities: an MMS (or a WhatsApp message) no device of the account can ever
carry is refused at once; an MMS to a phone that declared MMS arrives there in the app's
`mmsMessage` format, with the media's bytes fetched by the server."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from smsgate.agents.phone import DeviceClient
from smsgate.agents.simulator import SIMULATOR_CHANNELS, SimulatedPhone
from smsgate.app import create_app
from tests.factories import BASE_URL, pair_phone, send, signup
from tests.serving import loopback_certificate, serving_asgi

PICTURE = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40  # a JPEG's first bytes, then ~10 KB


async def _media(scope: dict[str, Any], receive: Any, send_: Any) -> None:
    """A small file server: /cita.jpg is the picture, /mid.jpg 400 KB, /big.jpg too big for
    an MMS, the rest 404."""
    path = scope["path"]
    if path == "/cita.jpg":
        status, body = 200, PICTURE
    elif path == "/big.jpg":
        status, body = 200, b"\0" * (6 * 1024 * 1024)
    elif path == "/mid.jpg":
        status, body = 200, b"\0" * (400 * 1024)
    else:
        status, body = 404, b"no"
    await send_(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"image/jpeg")],
        }
    )
    await send_({"type": "http.response.body", "body": body})


async def _mms_phone(user) -> DeviceClient:
    created = await user.client.post(
        "/api/devices/android", json={"name": "mms"}, headers=user.auth
    )
    phone = DeviceClient(BASE_URL + "/api/mobile/v1", http=user.client)
    await phone.register(
        pairing_token=created.json()["pairing"]["token"],
        name="smsgate/simulator",
        channels=SIMULATOR_CHANNELS,
    )
    return phone


async def test_a_channel_no_device_carries_is_refused(make_user) -> None:
    user = await make_user()
    stock = await pair_phone(user)  # the stock app: SMS and data only
    mms = await send(user, channel="mms", message="Hola", mediaUrls=["https://example.com/a.jpg"])
    assert mms.status_code == 422, mms.text
    assert (mms.json()["code"], mms.json()["field"]) == ("channel_unavailable", "channel")
    assert "no device of this account can send mms" in mms.json()["error"]
    assert "SMS and data SMS only" in mms.json()["error"]
    whatsapp = await send(user, channel="whatsapp", message="Hola")
    assert (whatsapp.status_code, whatsapp.json()["code"]) == (422, "channel_unavailable")
    assert "POST /api/devices/whatsapp" in whatsapp.json()["error"]
    pinned = await send(
        user,
        channel="mms",
        mediaUrls=["https://example.com/a.jpg"],
        deviceId=stock.device_id,
    )
    assert pinned.status_code == 422
    assert f"device {stock.device_id} cannot send mms" in pinned.json()["error"]
    listed = await user.client.get("/api/v1/messages", headers=user.auth)
    assert listed.json()["data"] == []  # nothing stored, nothing billed
    usage = (await user.client.get("/api/billing", headers=user.auth)).json()["usage"]
    assert usage["messages"] == 0


async def test_an_mms_reaches_a_phone_that_carries_it_with_its_media(
    make_user, tmp_path, monkeypatch
) -> None:
    user = await make_user()
    stock = await pair_phone(user)
    capable = await _mms_phone(user)
    tls = loopback_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls / "cert.pem"))  # the server trusts the media host
    async with serving_asgi(_media, tls=tls) as port:
        picture = f"https://127.0.0.1:{port}/cita.jpg"
        sent = await send(user, channel="mms", message="Su cita es mañana", mediaUrls=[picture])
        assert sent.status_code == 202, sent.text
        missing = await send(user, channel="mms", mediaUrls=[f"https://127.0.0.1:{port}/nada.jpg"])
        big = await send(user, channel="mms", mediaUrls=[f"https://127.0.0.1:{port}/big.jpg"])
        assert (missing.status_code, missing.json()["code"]) == (422, "media_unavailable")
        assert missing.json()["field"] == "mediaUrls[0]" and "HTTP 404" in missing.json()["error"]
        assert (big.status_code, big.json()["code"]) == (422, "media_unavailable")
        message_id = sent.json()["id"]

        assert await stock.pull() == []  # never handed to a phone that cannot send it
        [item] = await capable.pull()
        assert item["id"] == message_id
        assert "textMessage" not in item and "message" not in item  # the app's rule
        part = item["mmsMessage"]["attachments"][0]
        assert item["mmsMessage"]["text"] == "Su cita es mañana"
        assert part["contentType"] == "image/jpeg" and part["name"] == "cita.jpg"
        assert base64.b64decode(part["data"]) == PICTURE

        # the simulator, end to end: it takes the MMS, "sends" its file, reports Sent
        simulated = SimulatedPhone(await _mms_phone(user), send_delay=0, delivery_delay=0)
        second = await send(
            user, channel="mms", mediaUrls=[picture], deviceId=simulated.client.device_id
        )
        assert second.status_code == 202, second.text
    second_id = second.json()["id"]
    await simulated.pull_once()
    for _ in range(200):
        shown = await user.client.get(f"/api/v1/messages/{second_id}", headers=user.auth)
        if shown.json()["state"] == "sent":
            break
        await asyncio.sleep(0.02)
    assert shown.json()["state"] == "sent", shown.json()  # an MMS never reaches delivered
    assert simulated.media[second_id] == [("image/jpeg", PICTURE)]
    assert shown.json()["deviceId"] == simulated.client.device_id


STORAGE_PLAN = """
[plans.small]
name = "Small"
messages_per_period = -1
devices = -1
webhooks = -1
api_keys = -1
requests_per_minute = -1
storage_mb = 1
channels = ["sms", "mms", "data", "whatsapp"]
"""


async def test_files_are_kept_within_the_plans_storage(settings, tmp_path, monkeypatch) -> None:
    """One tenant could store files without end (a request stored 210 MB). Received files past
    the plan's storage_mb are described but not kept; an MMS whose media would pass it is
    refused with 402 storage_quota."""
    plans_file = tmp_path / "plans.toml"
    plans_file.write_text(STORAGE_PLAN)
    app = create_app(
        settings.model_copy(update={"plans_file": str(plans_file), "default_plan": "small"})
    )
    try:
        user = await signup(app)
        phone = await pair_phone(user)
        part = base64.b64encode(b"\x01" * 700 * 1024).decode()  # 700 KB each
        await phone.inbox(
            [
                {
                    "phoneNumber": "+5215512345678",
                    "message": "fotos",
                    "type": "mms",
                    "attachments": [
                        {"contentType": "image/jpeg", "name": f"{n}.jpg", "data": part}
                        for n in (1, 2)
                    ],
                }
            ]
        )
        [received] = (await user.client.get("/api/v1/inbox", headers=user.auth)).json()["data"]
        shown = await user.client.get(f"/api/v1/messages/{received['id']}", headers=user.auth)
        kept = [a["url"] is not None for a in shown.json()["attachments"]]
        assert kept == [True, False]  # the second would pass 1 MB: described only
        billing = (await user.client.get("/api/billing", headers=user.auth)).json()
        assert billing["plan"]["limits"]["storageMb"] == 1
        assert billing["usage"]["storageBytes"] == 700 * 1024
        assert billing["remaining"]["storageBytes"] == 1024 * 1024 - 700 * 1024
        capable = await _mms_phone(user)
        tls = loopback_certificate(tmp_path)
        monkeypatch.setenv("SSL_CERT_FILE", str(tls / "cert.pem"))
        async with serving_asgi(_media, tls=tls) as port:
            refused = await send(
                user,
                channel="mms",
                mediaUrls=[f"https://127.0.0.1:{port}/mid.jpg"],  # 700 + 400 KB: past 1 MB
                deviceId=capable.device_id,
            )
        assert (refused.status_code, refused.json()["code"]) == (402, "storage_quota"), refused.text
        listed = (await user.client.get("/api/v1/messages?direction=out", headers=user.auth)).json()
        assert listed["data"] == []
        await user.client.aclose()
    finally:
        await app.state.send_writer.close()
        await app.state.webhook_http.aclose()
        await app.state.db.dispose()
