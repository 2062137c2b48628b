"""Pairing a device again replaces its phone entirely: the old phone's token and the key it
signed its webhooks with both stop working (a replaced phone forged an inbound STOP)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
import pytest

from smsgate.agents.phone import DeviceClient, MobileError
from tests.events import listening, until
from tests.factories import BASE_URL, pair_phone


def _signed(key: str, device_id: str, text: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "id": f"in-{text}",
            "webhookId": "w",
            "event": "sms:received",
            "deviceId": device_id,
            "payload": {"messageId": f"m-{text}", "phoneNumber": "+5215512345678", "message": text},
        }
    ).encode()
    stamp = str(int(time.time()))
    signature = hmac.new(key.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()
    headers = {"X-Signature": signature, "X-Timestamp": stamp, "Content-Type": "application/json"}
    return body, headers


async def test_a_replaced_phone_can_neither_pull_nor_forge_received_messages(make_user) -> None:
    user = await make_user()
    old = await pair_phone(user)
    old_key = (await old.settings())["webhooks"]["signing_key"]
    again = await user.client.post(f"/api/devices/{old.device_id}/pairing", headers=user.auth)
    assert again.status_code == 200, again.text
    new = DeviceClient(BASE_URL + "/api/mobile/v1", http=user.client)
    await new.register(pairing_token=again.json()["token"], name="samsung/a54")
    new_key = (await new.settings())["webhooks"]["signing_key"]
    assert new_key != old_key

    ingest = f"/api/mobile/v1/ingest/{old.device_id}"
    body, headers = _signed(old_key, old.device_id, "STOP")
    forged = await user.client.post(ingest, content=body, headers=headers)
    assert forged.status_code == 401, forged.text
    optouts = await user.client.get("/api/opt-outs", headers=user.auth)
    assert optouts.json()["data"] == []  # the customer is not opted out
    body, headers = _signed(new_key, new.device_id, "Hola")
    assert (await user.client.post(ingest, content=body, headers=headers)).status_code == 204
    with pytest.raises(MobileError) as refused:
        await old.pull()  # nor does its token
    assert refused.value.status == 401


async def test_pairing_details_are_issued_by_post_only(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    path = f"/api/devices/{phone.device_id}/pairing"
    read = await user.client.get(path, headers=user.auth)
    assert read.status_code == 405  # a GET (a prefetch, a crawler) must not unpair the phone
    assert (await phone.pull()) == []  # still paired


async def test_a_deleted_devices_event_stream_ends(make_user, app, live_server) -> None:
    """A deleted phone's open event stream went on receiving the account's wake-ups."""
    user = await make_user()
    async with httpx.AsyncClient(timeout=10) as http:
        phone = await pair_phone(user, http=http, base=live_server)
        async with listening(phone, app) as frames:
            gone = await user.client.delete(f"/api/devices/{phone.device_id}", headers=user.auth)
            assert gone.status_code == 200
            await until(lambda: not app.state.hub.is_connected(phone.device_id))
            assert frames == [("connected", None)]  # no wake-up reached it
