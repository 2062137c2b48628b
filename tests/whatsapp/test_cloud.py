"""Cloud lines end to end against the local fake Graph API: create, handshake, signed inbound,
text / media / template sends, status callbacks, the 24-hour window, Graph API errors."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text

from smsgate.kit import clock
from smsgate.kit.crypto import encrypt
from smsgate.whatsapp import cloud
from smsgate.whatsapp.runner import CloudLines, fail_stalled
from tests.factories import pair_phone, send
from tests.webhooks.receiver import receiving
from tests.webhooks.test_delivery import _hook, deliver
from tests.whatsapp import fake_graph

CUSTOMER = "5215512345678"  # as WhatsApp writes a Mexican wa_id
CUSTOMER_E164 = "+" + CUSTOMER


async def cloud_line(user, graph, **extra) -> dict:
    number_id = str(secrets.randbelow(10**15) + 10**14)
    keys = {
        "phoneNumberId": number_id,
        "accessToken": "EAAG" + secrets.token_hex(20),
        "appSecret": secrets.token_hex(16),
        "verifyToken": "verify-" + secrets.token_hex(6),
    }
    graph.tokens[number_id] = keys["accessToken"]
    resp = await user.client.post(
        "/api/devices/whatsapp",
        json={"name": "Ventas", "provider": "cloud", **keys, **extra},
        headers=user.auth,
    )
    assert resp.status_code == 201, resp.text
    return {**resp.json(), "keys": keys}


async def post_webhook(user, line: dict, payload: dict, secret: str | None = None):
    raw, headers = fake_graph.signed(payload, secret or line["keys"]["appSecret"])
    return await user.client.post(
        f"/api/whatsapp/webhook/{line['id']}", content=raw, headers=headers
    )


async def customer_writes(user, line: dict, text: str = "Hola", sender: str = CUSTOMER) -> None:
    number_id = line["keys"]["phoneNumberId"]
    payload = fake_graph.inbound(number_id, sender, text, f"wamid.IN{secrets.token_hex(8)}")
    resp = await post_webhook(user, line, payload)
    assert resp.status_code == 200, resp.text


async def serve(app) -> int:
    lines = CloudLines(app)
    try:
        return await lines.serve_all()
    finally:
        await lines.aclose()


async def message(user, message_id: str) -> dict:
    resp = await user.client.get(f"/api/v1/messages/{message_id}", headers=user.auth)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_create_shows_no_secret_and_settings_update_credentials(
    make_user, app, graph
) -> None:
    user = await make_user()
    line = await cloud_line(user, graph)
    keys = line["keys"]
    whatsapp = line["whatsapp"]
    assert line["type"] == "whatsapp" and line["status"] == "pending"
    assert whatsapp["provider"] == "cloud" and whatsapp["ready"] is True
    assert whatsapp["phoneNumberId"] == keys["phoneNumberId"]
    assert whatsapp["webhookUrl"].endswith(f"/api/whatsapp/webhook/{line['id']}")
    for path in ("", "/settings"):
        text = (await user.client.get(f"/api/devices/{line['id']}{path}", headers=user.auth)).text
        assert keys["accessToken"] not in text and keys["appSecret"] not in text
        assert keys["verifyToken"] not in text
    listed = (await user.client.get("/api/devices", headers=user.auth)).text
    assert keys["accessToken"] not in listed and keys["accessToken"][-4:] in listed

    new_token = "EAAG" + secrets.token_hex(20)
    resp = await user.client.patch(
        f"/api/devices/{line['id']}/settings", json={"accessToken": new_token}, headers=user.auth
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["accessToken"].endswith(new_token[-4:])
    assert resp.json()["phoneNumberId"] == keys["phoneNumberId"]  # the rest is kept
    # the line now sends with the new token (the fake only accepts the token it knows)
    graph.tokens[keys["phoneNumberId"]] = new_token
    await customer_writes(user, line)
    sent = (await send(user, channel="whatsapp", phoneNumbers=[CUSTOMER_E164])).json()
    await serve(app)
    assert (await message(user, sent["id"]))["state"] == "sent"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "provider": "cloud", "phoneNumberId": "abc"}, "phoneNumberId"),
        ({"name": "x", "provider": "sms"}, "provider"),
        ({"name": "x", "provider": "web", "accessToken": "EAAG123456789"}, "provider"),
        ({"name": "", "provider": "cloud"}, "name"),
        ({"name": "x", "secret": "y"}, "secret"),
    ],
)
async def test_invalid_lines_are_400_and_create_nothing(make_user, body, field) -> None:
    user = await make_user()
    resp = await user.client.post("/api/devices/whatsapp", json=body, headers=user.auth)
    assert resp.status_code == 400, resp.text
    assert resp.json()["field"] == field
    assert (await user.client.get("/api/devices", headers=user.auth)).json()["data"] == []


async def test_android_settings_are_refused_on_a_line(make_user, graph) -> None:
    user = await make_user()
    line = await cloud_line(user, graph)
    resp = await user.client.patch(
        f"/api/devices/{line['id']}/settings", json={"limitValue": 5}, headers=user.auth
    )
    assert resp.status_code == 400 and resp.json()["field"] == "limitValue"


async def test_verification_handshake(make_user, graph) -> None:
    user = await make_user()
    line = await cloud_line(user, graph)
    url = f"/api/whatsapp/webhook/{line['id']}"
    ok = await user.client.get(
        url,
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": line["keys"]["verifyToken"],
            "hub.challenge": "1158201444",
        },
    )
    assert ok.status_code == 200 and ok.text == "1158201444"
    wrong = await user.client.get(
        url,
        params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
    )
    assert wrong.status_code == 403 and wrong.json()["code"] == "forbidden"
    missing = await user.client.get("/api/whatsapp/webhook/cnotalinexxxxxxxxxxxxxxxxx")
    assert missing.status_code == 404


async def test_signed_inbound_lands_in_inbox_threads_and_webhooks(make_user, app, graph) -> None:
    user = await make_user()
    line = await cloud_line(user, graph)
    async with receiving() as receiver:
        await _hook(user, receiver.url, ["whatsapp:received"])
        payload = fake_graph.inbound(line["keys"]["phoneNumberId"], CUSTOMER, "Hola!", "wamid.A1")
        assert (await post_webhook(user, line, payload)).status_code == 200
        assert (await post_webhook(user, line, payload)).status_code == 200  # Meta retries
        await deliver(app)
    inbox = (await user.client.get("/api/v1/inbox", headers=user.auth)).json()["data"]
    assert [(m["sender"], m["message"], m["channel"]) for m in inbox] == [
        (CUSTOMER_E164, "Hola!", "whatsapp")
    ]
    threads = (await user.client.get("/api/conversations", headers=user.auth)).json()["data"]
    # the thread is named after the WhatsApp profile
    assert [(t["contact"], t["channel"], t["displayName"]) for t in threads] == [
        (CUSTOMER_E164, "whatsapp", "Ana")
    ]
    assert len(receiver.requests) == 1
    assert receiver.requests[0].headers["x-smsgw-event"] == "whatsapp:received"
    assert json.loads(receiver.requests[0].body)["payload"]["senderName"] == "Ana"
    # a name the owner gave is kept when the profile writes again
    thread = threads[0]["id"]
    renamed = await user.client.patch(
        f"/api/conversations/{thread}", json={"displayName": "Ana García"}, headers=user.auth
    )
    assert renamed.status_code == 200, renamed.text
    again = fake_graph.inbound(line["keys"]["phoneNumberId"], CUSTOMER, "Otra", "wamid.A2")
    assert (await post_webhook(user, line, again)).status_code == 200
    named = await user.client.get(f"/api/conversations/{thread}", headers=user.auth)
    assert named.json()["displayName"] == "Ana García"


async def test_bad_signature_is_401_and_stores_nothing(make_user, graph) -> None:
    user = await make_user()
    line = await cloud_line(user, graph)
    payload = fake_graph.inbound(line["keys"]["phoneNumberId"], CUSTOMER, "x", "wamid.B1")
    forged = await post_webhook(user, line, payload, secret="not-the-app-secret")
    assert forged.status_code == 401 and forged.json()["code"] == "bad_signature"
    unsigned = await user.client.post(f"/api/whatsapp/webhook/{line['id']}", json=payload)
    assert unsigned.status_code == 401
    assert (await user.client.get("/api/v1/inbox", headers=user.auth)).json()["data"] == []


async def test_text_send_then_status_callbacks_move_states(make_user, app, graph) -> None:
    user = await make_user()
    line = await cloud_line(user, graph)
    await customer_writes(user, line)
    async with receiving() as receiver:
        await _hook(user, receiver.url, ["whatsapp:sent", "whatsapp:delivered"])
        sent = (await send(user, channel="whatsapp", phoneNumbers=[CUSTOMER_E164])).json()
        assert await serve(app) == 1
        body = graph.accepted(line["keys"]["phoneNumberId"])[-1]
        assert body["to"] == CUSTOMER and body["type"] == "text"
        assert body["text"]["body"] == "Hola mundo"
        assert (await message(user, sent["id"]))["state"] == "sent"
        number_id = line["keys"]["phoneNumberId"]
        for state in ("sent", "delivered", "read"):
            callback = fake_graph.status(number_id, body["_wamid"], state, CUSTOMER)
            assert (await post_webhook(user, line, callback)).status_code == 200
        await deliver(app)
    final = await message(user, sent["id"])
    assert final["state"] == "delivered"
    assert [r["state"] for r in final["recipients"]] == ["delivered"]
    events = [r.headers["x-smsgw-event"] for r in receiver.requests]
    assert sorted(events) == ["whatsapp:delivered", "whatsapp:sent"]
    # the line is online: its loop reached the queue
    device = (await user.client.get(f"/api/devices/{line['id']}", headers=user.auth)).json()
    assert device["status"] == "online"


async def test_outside_the_window_text_fails_but_a_template_goes(make_user, app, graph) -> None:
    user = await make_user()
    line = await cloud_line(user, graph)
    number_id = line["keys"]["phoneNumberId"]
    stranger = "+5215587654321"
    text = (await send(user, channel="whatsapp", phoneNumbers=[stranger])).json()
    template = {
        "name": "pedido_listo",
        "language": "es_MX",
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "A-17"}]}],
    }
    templated = (
        await send(
            user, channel="whatsapp", phoneNumbers=[stranger], message=None, template=template
        )
    ).json()
    assert templated["template"]["name"] == "pedido_listo"
    await serve(app)
    failed = await message(user, text["id"])
    assert failed["state"] == "failed"
    assert "24-hour" in failed["recipients"][0]["error"]
    assert (await message(user, templated["id"]))["state"] == "sent"
    bodies = graph.accepted(number_id)
    assert len(bodies) == 1 and bodies[0]["type"] == "template"
    assert bodies[0]["template"] == {
        "name": "pedido_listo",
        "language": {"code": "es_MX"},
        "components": template["components"],
    }
    # a day after the customer wrote, the window is closed again
    await customer_writes(user, line, sender=stranger[1:])
    inside = (await send(user, channel="whatsapp", phoneNumbers=[stranger])).json()
    await serve(app)
    assert (await message(user, inside["id"]))["state"] == "sent"
    clock.advance(timedelta(hours=24, minutes=1))
    late = (await send(user, channel="whatsapp", phoneNumbers=[stranger])).json()
    await serve(app)
    assert (await message(user, late["id"]))["state"] == "failed"


async def test_media_goes_one_file_per_message_with_the_caption_first(
    make_user, app, graph
) -> None:
    user = await make_user()
    line = await cloud_line(user, graph)
    await customer_writes(user, line)
    urls = ["https://cdn.example.com/menu.jpg", "https://cdn.example.com/docs/lista.pdf"]
    sent = (
        await send(
            user, channel="whatsapp", phoneNumbers=[CUSTOMER_E164], message="Menú", mediaUrls=urls
        )
    ).json()
    assert sent["mediaUrls"] == urls
    await serve(app)
    bodies = graph.accepted(line["keys"]["phoneNumberId"])
    assert [b["type"] for b in bodies] == ["image", "document"]
    assert bodies[0]["image"] == {"link": urls[0], "caption": "Menú"}
    assert bodies[1]["document"] == {"link": urls[1], "filename": "lista.pdf"}
    assert (await message(user, sent["id"]))["state"] == "sent"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"template": {"name": "x", "language": "es_MX"}}, "template"),  # with message
        ({"message": None, "template": {"name": "Bad Name", "language": "es"}}, "template.name"),
        ({"message": None, "template": {"name": "ok", "language": "español"}}, "template.language"),
        (
            {"channel": "sms", "message": None, "template": {"name": "a", "language": "es"}},
            "template",
        ),
        ({"mediaUrls": ["http://insecure.example.com/a.jpg"]}, "mediaUrls[0]"),
        ({"mediaUrls": ["https://x.example.com/a.jpg"], "message": "x" * 1025}, "message"),
    ],
)
async def test_invalid_whatsapp_sends_are_400(make_user, body, field) -> None:
    user = await make_user()
    resp = await send(user, **{"channel": "whatsapp", **body})
    assert resp.status_code == 400, resp.text
    assert resp.json()["field"] == field
    listed = (await user.client.get("/api/v1/messages", headers=user.auth)).json()["data"]
    assert listed == []


async def test_graph_errors_become_clear_recipient_errors(
    make_user, app, graph, monkeypatch
) -> None:
    monkeypatch.setattr(cloud, "RATE_LIMIT_RETRY", 0.01)
    user = await make_user()
    line = await cloud_line(user, graph)
    gone, busy, briefly = "5215511110001", "5215511110002", "5215511110003"
    for number in (gone, busy, briefly):
        await customer_writes(user, line, sender=number)
    graph.undeliverable.add(gone)
    graph.throttled[busy] = 99
    graph.throttled[briefly] = 2
    sent = (
        await send(user, channel="whatsapp", phoneNumbers=["+" + gone, "+" + busy, "+" + briefly])
    ).json()
    await serve(app)
    recipients = {r["phoneNumber"]: r for r in (await message(user, sent["id"]))["recipients"]}
    assert recipients["+" + gone]["state"] == "failed"
    assert "cannot receive this message" in recipients["+" + gone]["error"]
    assert "(131026: Message Undeliverable.)" in recipients["+" + gone]["error"]
    assert recipients["+" + busy]["state"] == "failed"
    assert recipients["+" + busy]["error"].startswith("rate limited by WhatsApp")
    assert recipients["+" + briefly]["state"] == "sent"  # retried after the refusals
    assert graph.throttled[busy] == 99 - 4  # tried MAX_ATTEMPTS times, then gave up


async def test_a_failed_status_after_sent_names_the_reason(make_user, app, graph) -> None:
    user = await make_user()
    line = await cloud_line(user, graph)
    await customer_writes(user, line)
    sent = (await send(user, channel="whatsapp", phoneNumbers=[CUSTOMER_E164])).json()
    await serve(app)
    wamid = graph.accepted(line["keys"]["phoneNumberId"])[-1]["_wamid"]
    callback = fake_graph.status(
        line["keys"]["phoneNumberId"], wamid, "failed", CUSTOMER, error_code=131047
    )
    assert (await post_webhook(user, line, callback)).status_code == 200
    final = await message(user, sent["id"])
    assert final["state"] == "failed"
    assert "24 hours" in final["recipients"][0]["error"]


async def test_whatsapp_and_sms_never_cross(make_user, app, graph) -> None:
    user = await make_user()
    line = await cloud_line(user, graph)
    phone = await pair_phone(user)
    await customer_writes(user, line)
    sms = (await send(user)).json()
    wa = (await send(user, channel="whatsapp", phoneNumbers=[CUSTOMER_E164])).json()
    pulled = [m["id"] for m in await phone.pull()]
    assert pulled == [sms["id"]]
    assert await serve(app) == 1
    assert len(graph.accepted(line["keys"]["phoneNumberId"])) == 1
    assert (await message(user, wa["id"]))["state"] == "sent"
    assert (await message(user, sms["id"]))["state"] == "processing"
    wrong = await send(user, channel="whatsapp", deviceId=phone.device_id)
    assert wrong.status_code == 400 and wrong.json()["code"] == "wrong_device_type"
    wrong = await send(user, deviceId=line["id"])
    assert wrong.status_code == 400 and wrong.json()["code"] == "wrong_device_type"


async def test_a_line_that_died_mid_send_fails_with_outcome_unknown(make_user, app, graph) -> None:
    user = await make_user()
    line = await cloud_line(user, graph)
    sent = (await send(user, channel="whatsapp", phoneNumbers=[CUSTOMER_E164])).json()
    from smsgate.whatsapp.runner import DbLineQueue

    queue = DbLineQueue(app.state.db, line["id"])
    assert [m["id"] for m in await queue.pull()] == [sent["id"]]
    await queue.acknowledge(sent["id"])  # ... and the process dies before sending
    assert await fail_stalled(app.state.db, timedelta(minutes=15)) == 0
    clock.advance(timedelta(minutes=16))
    assert await fail_stalled(app.state.db, timedelta(minutes=15)) == 1
    final = await message(user, sent["id"])
    assert final["state"] == "failed"
    assert final["recipients"][0]["error"].startswith("outcome_unknown")
    assert await serve(app) == 0  # never sent again
    assert graph.accepted(line["keys"]["phoneNumberId"]) == []


async def test_a_line_whose_credentials_cannot_be_read_does_not_stop_the_others(
    make_user, app, graph, caplog
) -> None:
    """Credentials sealed with another SMSGATE_SECRET_KEY (a key changed by mistake, or rows
    written by another server) fail that line alone; the other lines still send."""
    user = await make_user()
    sealed, good = await cloud_line(user, graph), await cloud_line(user, graph)
    other_key = encrypt("another-secret-key-" + secrets.token_hex(16), json.dumps(sealed["keys"]))
    async with app.state.db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE devices SET credentials_encrypted = :c WHERE id = :id"),
            {"c": other_key, "id": sealed["id"]},
        )
    await customer_writes(user, good)
    sent = await send(user, channel="whatsapp", deviceId=good["id"], phoneNumbers=[CUSTOMER_E164])
    assert sent.status_code == 202, sent.text
    assert await serve(app) == 1
    assert (await message(user, sent.json()["id"]))["state"] == "sent"
    assert f"WhatsApp cloud line {sealed['id']} failed" in caplog.text


async def test_another_account_cannot_see_or_use_a_line(make_user, graph) -> None:
    owner, other = await make_user(), await make_user()
    line = await cloud_line(owner, graph)
    for method, path, body in [
        ("GET", f"/api/devices/{line['id']}", None),
        ("GET", f"/api/devices/{line['id']}/settings", None),
        ("PATCH", f"/api/devices/{line['id']}/settings", {"accessToken": "EAAG0123456789"}),
        ("GET", f"/api/devices/{line['id']}/qr", None),
        ("DELETE", f"/api/devices/{line['id']}", None),
    ]:
        resp = await other.client.request(method, path, json=body, headers=other.auth)
        assert resp.status_code == 404, (path, resp.text)
    resp = await send(other, channel="whatsapp", deviceId=line["id"])
    assert resp.status_code == 404


async def test_a_photo_from_a_customer_is_kept_as_an_attachment(make_user, graph) -> None:
    user = await make_user()
    line = await cloud_line(user, graph)
    photo = b"\xff\xd8\xff\xe0" + secrets.token_bytes(2000)  # a JPEG's first bytes, then noise
    media_id = str(secrets.randbelow(10**15))
    graph.media[media_id] = (photo, "image/jpeg")
    payload = fake_graph.inbound_image(
        line["keys"]["phoneNumberId"], CUSTOMER, media_id, "mi recibo", "wamid.IMG1"
    )
    assert (await post_webhook(user, line, payload)).status_code == 200
    [received] = (await user.client.get("/api/v1/inbox", headers=user.auth)).json()["data"]
    assert received["message"] == "[image] mi recibo"
    shown = (await user.client.get(f"/api/v1/messages/{received['id']}", headers=user.auth)).json()
    [attachment] = shown["attachments"]
    assert attachment["contentType"] == "image/jpeg" and attachment["size"] == len(photo)
    file = await user.client.get(attachment["url"], headers=user.auth)
    assert file.status_code == 200 and file.content == photo
    # Meta sends the same webhook again: one message, one attachment
    assert (await post_webhook(user, line, payload)).status_code == 200
    again = await user.client.get(f"/api/v1/messages/{received['id']}", headers=user.auth)
    assert len(again.json()["attachments"]) == 1


async def test_a_received_file_is_fetched_only_from_a_checked_address(graph, settings) -> None:
    """The media id comes in a webhook and the file's URL in Meta's answer: an id that is a
    path is never requested, and a URL to an internal address is never fetched with the line's
    token (the fake Graph API answers URLs on 127.0.0.1: private, unless allowed)."""
    graph.tokens["n1"] = "graph-token"
    keys = cloud.Credentials("n1", "graph-token", "secret", "verify")
    media_id = str(secrets.randbelow(10**15))
    graph.media[media_id] = (b"PDF-1.7 factura", "application/pdf")
    base = settings.whatsapp_graph_url
    before = graph.downloads
    async with httpx.AsyncClient() as http:
        for steering in (f"../{media_id}", f"{media_id}?fields=url", f"{media_id}#x", ""):
            media = cloud.Media(steering, "application/pdf", None)
            assert await cloud.download(http, base, keys, media, 10**6, allow_private=True) is None
        media = cloud.Media(media_id, "application/pdf", "factura.pdf")
        refused = await cloud.download(http, base, keys, media, 10**6, allow_private=False)
        assert refused is None and graph.downloads == before
        fetched = await cloud.download(http, base, keys, media, 10**6, allow_private=True)
        assert fetched == b"PDF-1.7 factura" and graph.downloads == before + 1


async def test_callbacks_that_beat_the_lines_report_are_applied_once_it_lands(
    make_user, app, graph
) -> None:
    """Meta may call the webhook (sent, then delivered) before its answer to the send reaches
    the line, so before the line has recorded the wamid. Those callbacks are kept and applied
    by the worker once the wamid is known: the state ends delivered, with its webhook."""
    from smsgate.worker.jobs import run_jobs

    user = await make_user()
    line = await cloud_line(user, graph)
    await customer_writes(user, line)
    number_id = line["keys"]["phoneNumberId"]

    async def meta_calls_first(called_number: str, wamid: str) -> None:
        for state in ("sent", "delivered"):
            callback = fake_graph.status(called_number, wamid, state, CUSTOMER)
            assert (await post_webhook(user, line, callback)).status_code == 200

    async with receiving() as receiver:
        await _hook(user, receiver.url, ["whatsapp:sent", "whatsapp:delivered"])
        sent = (await send(user, channel="whatsapp", phoneNumbers=[CUSTOMER_E164])).json()
        graph.before_answer = meta_calls_first
        try:
            assert await serve(app) == 1
        finally:
            graph.before_answer = None
        assert graph.accepted(number_id)[-1]["_wamid"]
        # the line's own report says sent; Meta's delivered came too early to match anything
        assert (await message(user, sent["id"]))["state"] == "sent"
        await run_jobs(app)
        await deliver(app)
    final = await message(user, sent["id"])
    assert final["state"] == "delivered"
    assert [r["state"] for r in final["recipients"]] == ["delivered"]
    events = sorted(r.headers["x-smsgw-event"] for r in receiver.requests)
    assert events == ["whatsapp:delivered", "whatsapp:sent"]
    async with app.state.db.engine.connect() as conn:
        left = await conn.execute(text("SELECT COUNT(*) FROM early_statuses"))
        assert left.scalar() == 0  # applied, then forgotten


async def test_callbacks_for_unknown_copies_are_forgotten_after_a_day(
    make_user, app, graph
) -> None:
    from smsgate.worker.jobs import run_jobs

    user = await make_user()
    line = await cloud_line(user, graph)
    callback = fake_graph.status(
        line["keys"]["phoneNumberId"], "wamid.NOTOURS", "delivered", CUSTOMER
    )
    assert (await post_webhook(user, line, callback)).status_code == 200
    count = text("SELECT COUNT(*) FROM early_statuses WHERE provider_id = 'wamid.NOTOURS'")
    await run_jobs(app)
    async with app.state.db.engine.connect() as conn:
        assert (await conn.execute(count)).scalar() == 1  # kept while it may still match
    clock.advance(timedelta(days=1, minutes=1))
    await run_jobs(app)
    async with app.state.db.engine.connect() as conn:
        assert (await conn.execute(count)).scalar() == 0
