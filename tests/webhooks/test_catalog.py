"""The event catalog (GET /api/webhooks/events) describes what is delivered: every event is
produced, delivered in the native format, and its payload validated against the catalog's
schema for it, as served (the schemas are closed: an undocumented field fails too)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import timedelta

import jsonschema_rs

from smsgate.agents.phone import DeviceClient, MobileError
from smsgate.agents.whatsapp_web import Bridge, SimulatedSession
from smsgate.campaigns import service as campaigns
from smsgate.kit import clock
from smsgate.whatsapp.lines import Pacer
from tests.factories import pair_phone, send
from tests.webhooks.receiver import receiving
from tests.webhooks.test_delivery import _hook, _ingest, _produce_every_event, deliver
from tests.whatsapp.test_web import _message_state, until


async def _whatsapp_line(
    user, live_server: str
) -> tuple[SimulatedSession, asyncio.Task, DeviceClient]:
    made = await user.client.post(
        "/api/devices/whatsapp", json={"name": "Caja", "provider": "web"}, headers=user.auth
    )
    line = made.json()
    client = DeviceClient(live_server + "/api/mobile/v1")
    await client.register(pairing_token=line["pairing"]["token"], name="smsgate/whatsapp")
    session = SimulatedSession(phone="+5215500002222", refuse={"+5215599990000": "not on WhatsApp"})
    bridge = Bridge(client, session, pacer=Pacer(per_recipient=0), poll_interval=0.5)
    task = asyncio.get_running_loop().create_task(bridge.run())
    await asyncio.sleep(0.2)
    await session.scan()
    return session, task, client


async def test_every_delivered_payload_matches_its_catalog_entry(
    make_user, app, live_server
) -> None:
    user = await make_user()
    catalog = (await user.client.get("/api/webhooks/events", headers=user.auth)).json()["data"]
    every = [entry["event"] for entry in catalog]
    async with receiving() as receiver, receiving() as gone:
        await _hook(user, receiver.url, every)
        gone.status = 410
        await _hook(user, gone.url, ["system:ping"])  # disabled at once: webhook:disabled

        await _produce_every_event(user, app)  # sms:*, mms/whatsapp:received, ping, device:*
        phone = await pair_phone(user, name="second")
        await phone.inbox(
            [
                {
                    "phoneNumber": "+5215512345678",
                    "message": "AAEC",
                    "id": "d1",
                    "type": "data",
                    "port": 53739,
                },
                {
                    "phoneNumber": "5215512340000",
                    "message": "hola",
                    "id": "w1",
                    "type": "whatsapp",
                    "name": "Ana",
                },
                {"phoneNumber": "+5215512349999", "message": "BAJA", "id": "s1"},
            ]
        )
        opted = await send(user, phoneNumbers=["+5215512349999"])  # failed in the writer: opted_out
        assert opted.json()["recipients"][0]["error"] == "opted_out"
        post = await _ingest(user, phone)
        await post(
            "mms:downloaded",
            {
                "messageId": "nowhere",
                "sender": "+5215512345678",
                "subject": "Foto",
                "body": "mira",
                "attachments": [
                    {"partId": 1, "contentType": "image/jpeg", "name": "a.jpg", "size": 3}
                ],
                "receivedAt": "2026-12-07T10:00:00.000+01:00",  # the app's own offset
            },
        )
        _session, task, client = await _whatsapp_line(user, live_server)
        try:
            ok = (await send(user, channel="whatsapp", phoneNumbers=["+5215512345678"])).json()
            bad = (await send(user, channel="whatsapp", phoneNumbers=["+5215599990000"])).json()
            await until(lambda: _message_state(user, ok["id"], "delivered"), timeout=20)
            await until(lambda: _message_state(user, bad["id"], "failed"), timeout=20)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, MobileError):
                await task
            await client.aclose()
        # a campaign whose one row is refused is done at once: campaign:finished
        empty = {"name": "vacía", "message": "hola", "recipients": [{"phoneNumber": "no"}]}
        made = await user.client.post("/api/campaigns", json=empty, headers=user.auth)
        assert made.status_code == 201, made.text
        assert await campaigns.finish(app.state.db) == 1
        await user.client.post(
            f"/api/webhooks/{(await _hook_ids(user))[-1]}/test", headers=user.auth
        )
        clock.advance(timedelta(seconds=1))
        while await deliver(app):
            pass

    schemas = {entry["event"]: entry["schema"] for entry in catalog}
    seen = set()
    for request in receiver.requests:
        event = request.headers["x-smsgw-event"]
        payload = json.loads(request.body)["payload"]
        errors = [
            e.message for e in jsonschema_rs.validator_for(schemas[event]).iter_errors(payload)
        ]
        assert not errors, (event, payload, errors)
        seen.add(event)
    assert seen == set(every), set(every) - seen
    assert len(every) == 15  # the reference's 13, webhook:disabled and campaign:finished


async def _hook_ids(user) -> list[str]:
    return [
        h["id"] for h in (await user.client.get("/api/webhooks", headers=user.auth)).json()["data"]
    ]


async def test_the_catalog_lists_fields_from_the_same_types(make_user) -> None:
    user = await make_user()
    catalog = (await user.client.get("/api/webhooks/events", headers=user.auth)).json()["data"]
    entry = {e["event"]: e for e in catalog}
    downloaded = entry["mms:downloaded"]
    assert set(downloaded["schema"]["properties"]) >= {"subject", "body", "attachments"}
    assert "simNumber" not in downloaded["schema"]["properties"]
    assert "senderName?" in entry["whatsapp:received"]["payload"]
    assert entry["sms:failed"]["payload"].startswith(
        "{messageId, externalId, phoneNumber, state, error?"
    )
