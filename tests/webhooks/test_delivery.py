"""Deliveries to a real local receiver: signatures in every format, retries, 410, Retry-After,
redirects, timeouts, leases, rotation, replay."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook as StandardVerifier

from smsgate.config import Settings
from smsgate.kit import clock
from smsgate.webhooks import verify
from smsgate.webhooks.delivery import LEASE, MAX_ATTEMPTS, SCHEDULE, _claim, deliver_due
from smsgate.webhooks.signing import InvalidSignature
from smsgate.worker.jobs import run_jobs
from tests.factories import pair_phone, send
from tests.webhooks.receiver import receiving


async def deliver(app, settings=None) -> int:
    """Rounds until none is due now (a round takes at most PER_WEBHOOK of a webhook)."""
    total = 0
    while sent := await deliver_due(
        app.state.db, app.state.webhook_http, settings or app.state.settings
    ):
        total += sent
    return total


async def _hook(user, url: str, events: list[str], fmt: str = "native") -> dict:
    resp = await user.client.post(
        "/api/webhooks", json={"url": url, "events": events, "format": fmt}, headers=user.auth
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


ALL_PRODUCIBLE = [
    "sms:sent",
    "sms:delivered",
    "sms:failed",
    "sms:received",
    "mms:received",
    "whatsapp:received",
    "system:ping",
    "device:online",
    "device:offline",
]


async def _produce_every_event(user, app) -> None:
    phone = await pair_phone(user)  # device:online
    msg = (await send(user, phoneNumbers=["+5215555555555", "+525512345678"])).json()["id"]
    await phone.pull()
    await phone.report(
        msg,
        "Sent",
        [("+5215555555555", "Sent", None), ("+525512345678", "Failed", "RESULT_ERROR_NO_SERVICE")],
    )
    await phone.report(msg, "Delivered", [("+5215555555555", "Delivered", None)])
    await phone.inbox(
        [
            {"phoneNumber": "+5215512345678", "message": "Hola ñandú 😀", "id": "i1"},
            {"phoneNumber": "+5215512345678", "message": "foto", "id": "i2", "type": "mms"},
            {"phoneNumber": "+5215512345678", "message": "hola", "id": "i3", "type": "whatsapp"},
        ]
    )
    hooks = (await user.client.get("/api/webhooks", headers=user.auth)).json()["data"]
    await user.client.post(f"/api/webhooks/{hooks[0]['id']}/test", headers=user.auth)
    clock.advance(timedelta(minutes=5))
    await run_jobs(app)  # device:offline


@pytest.mark.parametrize("fmt", ["native", "standard", "android"])
async def test_every_event_arrives_signed_in_each_format(make_user, app, fmt) -> None:
    user = await make_user()
    async with receiving() as receiver:
        hook = await _hook(user, receiver.url, ALL_PRODUCIBLE, fmt)
        await _produce_every_event(user, app)
        while await deliver(app):
            pass
        assert {r.headers["x-smsgw-event"] for r in receiver.requests} == set(ALL_PRODUCIBLE)
        secret = hook["secret"]
        for request in receiver.requests:
            assert request.headers["x-smsgw-format"] == fmt
            stamp = request.headers["x-smsgw-timestamp"]
            # an independent verifier per format, over the raw bytes
            if fmt == "native":
                expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
                assert request.headers["x-smsgw-signature"] == expected
            elif fmt == "android":
                expected = hmac.new(
                    secret.encode(), request.body + stamp.encode(), hashlib.sha256
                ).hexdigest()
                assert request.headers["x-signature"] == expected
                assert request.headers["x-timestamp"] == stamp
            else:
                StandardVerifier(secret).verify(request.body, request.headers)
            document = verify(secret, request.body, request.headers)
            assert document["id"] == request.headers["x-smsgw-id"]
            assert document["event"] == request.headers["x-smsgw-event"]
            assert document["webhookId"] == hook["id"]
        sent = next(
            json.loads(r.body)
            for r in receiver.requests
            if r.headers["x-smsgw-event"] == "sms:failed"
        )
        assert sent["payload"]["error"] == "RESULT_ERROR_NO_SERVICE"
        assert sent["payload"]["phoneNumber"] == "+525512345678"
        received = next(
            r for r in receiver.requests if r.headers["x-smsgw-event"] == "sms:received"
        )
        # signed over the exact bytes: non-ASCII text is sent as UTF-8, not escaped
        assert "Hola ñandú 😀".encode() in received.body


async def test_verify_rejects_tampering_and_stale_timestamps(make_user, app) -> None:
    user = await make_user()
    async with receiving() as receiver:
        hook = await _hook(user, receiver.url, ["system:ping"])
        await user.client.post(f"/api/webhooks/{hook['id']}/test", headers=user.auth)
        await deliver(app)
    request = receiver.requests[0]
    secret = hook["secret"]
    assert verify(secret, request.body, request.headers)["event"] == "system:ping"
    reencoded = json.dumps(json.loads(request.body)).encode()
    for body, headers, secret_ in (
        (request.body.replace(b"pass", b"fail"), request.headers, secret),
        (reencoded, request.headers, secret),
        (request.body, {**request.headers, "x-smsgw-signature": "00"}, secret),
        (
            request.body,
            {k: v for k, v in request.headers.items() if k != "x-smsgw-timestamp"},
            secret,
        ),
        (request.body, request.headers, "whsec_wrong"),
        (request.body, request.headers, ""),
    ):
        with pytest.raises(InvalidSignature):
            verify(secret_, body, headers)
    later = time.time() + 301
    with pytest.raises(InvalidSignature):
        verify(secret, request.body, request.headers, now=later)


async def test_receiver_down_then_up_gets_everything_with_stable_ids(make_user, app) -> None:
    user = await make_user()
    async with receiving() as receiver:
        await _hook(user, receiver.url, ["sms:received"])
        phone = await pair_phone(user)
        await phone.inbox(
            [{"phoneNumber": "+5215512345678", "message": f"m{i}", "id": f"d{i}"} for i in range(5)]
        )
        receiver.status = 500
        for step in SCHEDULE[:4]:  # down for about 2.5 hours
            await deliver(app)
            clock.advance(timedelta(seconds=step * 1.2))
        failed_ids = {r.headers["x-smsgw-id"] for r in receiver.requests}
        assert len(failed_ids) == 5 and len(receiver.requests) == 20
        receiver.status = 200
        receiver.requests.clear()
        clock.advance(timedelta(hours=6))
        await deliver(app)
        assert {r.headers["x-smsgw-id"] for r in receiver.requests} == failed_ids
        assert len(receiver.requests) == 5
        clock.advance(timedelta(days=4))
        await deliver(app)
        assert len(receiver.requests) == 5  # nothing more to send
    hook_id = (await user.client.get("/api/webhooks", headers=user.auth)).json()["data"][0]["id"]
    log = (await user.client.get(f"/api/webhooks/{hook_id}/deliveries", headers=user.auth)).json()
    first = log["data"][0]
    assert first["status"] == "succeeded" and first["attempts"] == 5
    assert [h["statusCode"] for h in first["history"]] == [500, 500, 500, 500, 200]
    assert first["history"][0]["response"] == "answer 500"
    assert all(h["latencyMs"] is not None for h in first["history"])


async def test_retry_times_follow_the_schedule(make_user, app) -> None:
    user = await make_user()
    async with receiving() as receiver:
        receiver.status = 503
        hook = await _hook(user, receiver.url, ["system:ping"])
        await user.client.post(f"/api/webhooks/{hook['id']}/test", headers=user.auth)
        start = clock.now()
        await deliver(app)
        log = (
            await user.client.get(f"/api/webhooks/{hook['id']}/deliveries", headers=user.auth)
        ).json()["data"][0]
        due = datetime.fromisoformat(log["nextAttemptAt"].replace("Z", "+00:00"))
        delay = (due - start).total_seconds()
        assert SCHEDULE[0] * 0.85 <= delay <= SCHEDULE[0] * 1.15 + 1
        await deliver(app)
        assert len(receiver.requests) == 1  # not due yet


async def test_retry_after_is_honoured(make_user, app) -> None:
    user = await make_user()
    async with receiving() as receiver:
        receiver.status = 429
        receiver.answer_headers = {"Retry-After": "120"}
        hook = await _hook(user, receiver.url, ["system:ping"])
        await user.client.post(f"/api/webhooks/{hook['id']}/test", headers=user.auth)
        await deliver(app)
        clock.advance(timedelta(seconds=119))
        await deliver(app)
        assert len(receiver.requests) == 1
        clock.advance(timedelta(seconds=2))
        receiver.status = 200
        await deliver(app)
        assert len(receiver.requests) == 2


async def test_410_disables_the_webhook(make_user, app) -> None:
    user = await make_user()
    async with receiving() as receiver:
        receiver.status = 410
        hook = await _hook(user, receiver.url, ["system:ping", "sms:received"])
        await user.client.post(f"/api/webhooks/{hook['id']}/test", headers=user.auth)
        await deliver(app)
        shown = (await user.client.get(f"/api/webhooks/{hook['id']}", headers=user.auth)).json()
        assert shown["enabled"] is False and "410" in shown["disabledReason"]
        phone = await pair_phone(user)
        await phone.inbox([{"phoneNumber": "+5215512345678", "message": "x"}])
        clock.advance(timedelta(days=1))
        await deliver(app)
        assert len(receiver.requests) == 1  # nothing after the 410
        enabled = await user.client.patch(
            f"/api/webhooks/{hook['id']}", json={"enabled": True}, headers=user.auth
        )
        assert enabled.json()["enabled"] is True and enabled.json()["disabledReason"] is None


async def test_redirects_are_not_followed(make_user, app) -> None:
    user = await make_user()
    async with receiving() as receiver:
        receiver.status = 302
        receiver.answer_headers = {"Location": "http://169.254.169.254/latest/meta-data"}
        hook = await _hook(user, receiver.url, ["system:ping"])
        await user.client.post(f"/api/webhooks/{hook['id']}/test", headers=user.auth)
        await deliver(app)
        assert len(receiver.requests) == 1
    log = (
        await user.client.get(f"/api/webhooks/{hook['id']}/deliveries", headers=user.auth)
    ).json()["data"][0]
    assert log["status"] == "pending" and "redirects are not followed" in log["lastError"]


async def test_a_hanging_receiver_times_out(make_user, app, settings) -> None:
    user = await make_user()
    async with receiving() as receiver:
        receiver.delay = 3
        hook = await _hook(user, receiver.url, ["system:ping"])
        await user.client.post(f"/api/webhooks/{hook['id']}/test", headers=user.auth)
        started = time.monotonic()
        await deliver(app, settings.model_copy(update={"webhook_timeout_seconds": 0.5}))
        assert time.monotonic() - started < 2.5
    log = (
        await user.client.get(f"/api/webhooks/{hook['id']}/deliveries", headers=user.auth)
    ).json()["data"][0]
    assert "timed out after 0.5 s" in log["lastError"]


async def test_private_targets_are_refused_at_delivery_too(make_user, app, settings) -> None:
    user = await make_user()
    async with receiving() as receiver:
        hook = await _hook(user, receiver.url, ["system:ping"])  # allowed when it was saved
        await user.client.post(f"/api/webhooks/{hook['id']}/test", headers=user.auth)
        await deliver(app, settings.model_copy(update={"webhooks_allow_private": False}))
        assert receiver.requests == []  # no connection was made
    log = (
        await user.client.get(f"/api/webhooks/{hook['id']}/deliveries", headers=user.auth)
    ).json()["data"][0]
    assert log["lastError"].startswith("refused target:")


async def test_a_crashed_worker_leaves_the_delivery_to_its_lease(make_user, app) -> None:
    user = await make_user()
    async with receiving() as receiver:
        hook = await _hook(user, receiver.url, ["system:ping"])
        for _ in range(3):
            await user.client.post(f"/api/webhooks/{hook['id']}/test", headers=user.auth)
        async with app.state.db.transaction() as session:
            claimed = await _claim(session, 100)  # a worker claims, then dies before sending
        assert len([c for c in claimed if c.webhook.id == hook["id"]]) == 3
        await deliver(app)
        assert receiver.requests == []  # leased: nobody else sends them meanwhile
        clock.advance(LEASE + timedelta(seconds=1))
        await deliver(app)
        assert len(receiver.requests) == 3
    log = (
        await user.client.get(f"/api/webhooks/{hook['id']}/deliveries", headers=user.auth)
    ).json()["data"]
    assert all(d["status"] == "succeeded" and d["attempts"] == 2 for d in log)


def _reference_hmac(secret: str, body: bytes) -> str:
    """What the API reference tells a receiver to compute: hex HMAC-SHA256 of the body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def test_secret_rotation_overlap(make_user, app) -> None:
    user = await make_user()
    async with receiving() as receiver:
        hook = await _hook(user, receiver.url, ["system:ping"])
        old = hook["secret"]
        await user.client.post(f"/api/webhooks/{hook['id']}/test", headers=user.auth)
        await deliver(app)
        before = receiver.requests[-1]
        assert before.headers["x-smsgw-signature"] == _reference_hmac(old, before.body)
        rotated = (
            await user.client.post(
                f"/api/webhooks/{hook['id']}/rotate-secret",
                json={"overlapSeconds": 3600},
                headers=user.auth,
            )
        ).json()
        new = rotated["secret"]
        assert new != old and rotated["secretRotatedUntil"]
        await user.client.post(f"/api/webhooks/{hook['id']}/test", headers=user.auth)
        await deliver(app)
        during = receiver.requests[-1]
        # a receiver written from the API reference compares the header with one HMAC of the
        # secret it holds: the old one until the overlap ends, then the new one
        assert during.headers["x-smsgw-signature"] == _reference_hmac(old, during.body)
        assert during.headers["x-smsgw-signature-next"] == _reference_hmac(new, during.body)
        verify(old, during.body, during.headers)
        verify(new, during.body, during.headers)
        clock.advance(timedelta(seconds=3601))
        await user.client.post(f"/api/webhooks/{hook['id']}/test", headers=user.auth)
        await deliver(app)
        after = receiver.requests[-1]
        assert after.headers["x-smsgw-signature"] == _reference_hmac(new, after.body)
        assert "x-smsgw-signature-next" not in after.headers
        verify(new, after.body, after.headers, now=clock.now().timestamp())
        with pytest.raises(InvalidSignature):
            verify(old, after.body, after.headers, now=clock.now().timestamp())
        now = (
            await user.client.post(
                f"/api/webhooks/{hook['id']}/rotate-secret",
                json={"overlapSeconds": 0},
                headers=user.auth,
            )
        ).json()
        secret = (
            await user.client.get(f"/api/webhooks/{hook['id']}/secret", headers=user.auth)
        ).json()
        assert secret == {"secret": now["secret"], "previousSecret": None}


async def test_replay_a_time_range(make_user, app) -> None:
    user = await make_user()
    async with receiving() as receiver:
        hook = await _hook(user, receiver.url, ["sms:received"])
        phone = await pair_phone(user)
        since = datetime.now(UTC) - timedelta(minutes=1)
        await phone.inbox(
            [{"phoneNumber": "+5215512345678", "message": f"r{i}", "id": f"r{i}"} for i in range(3)]
        )
        await deliver(app)
        first = [r.headers["x-smsgw-id"] for r in receiver.requests]
        replay = await user.client.post(
            f"/api/webhooks/{hook['id']}/replay",
            json={"since": since.isoformat()},
            headers=user.auth,
        )
        assert replay.status_code == 202 and replay.json() == {"queued": 3}
        await deliver(app)
        assert sorted(r.headers["x-smsgw-id"] for r in receiver.requests[3:]) == sorted(first)
        await deliver(app)
        assert len(receiver.requests) == 6  # exactly once per replay request


async def test_deliveries_are_scoped_to_the_webhooks_device(make_user, app) -> None:
    user = await make_user()
    a, b = await pair_phone(user, name="a"), await pair_phone(user, name="b")
    async with receiving() as receiver:
        hook = await user.client.post(
            "/api/webhooks",
            json={"url": receiver.url, "events": ["sms:received"], "deviceId": b.device_id},
            headers=user.auth,
        )
        assert hook.status_code == 201
        await a.inbox([{"phoneNumber": "+5215512345678", "message": "to a"}])
        await b.inbox([{"phoneNumber": "+5215512345678", "message": "to b"}])
        await deliver(app)
        assert [json.loads(r.body)["payload"]["message"] for r in receiver.requests] == ["to b"]


def test_schedule_spans_about_five_days() -> None:
    total = sum(SCHEDULE)
    assert 4.5 * 86400 <= total <= 5.5 * 86400 and len(SCHEDULE) + 1 == MAX_ATTEMPTS


async def test_an_operator_sets_the_retry_schedule(make_user, app, settings) -> None:
    """SMSGATE_WEBHOOK_RETRY_SCHEDULE=2,60: a retry 2 s after the first failure, the next a
    minute later, then the delivery is failed; a bad value is refused at start-up."""
    short = settings.model_copy(update={"webhook_retry_schedule": " 2, 60 "})
    short = Settings.model_validate(short.model_dump())
    assert short.webhook_retries == (2, 60)
    with pytest.raises(ValueError, match="SMSGATE_WEBHOOK_RETRY_SCHEDULE"):
        Settings(webhook_retry_schedule="5,soon")
    user = await make_user()
    async with receiving() as receiver:
        receiver.status = 500
        hook = await _hook(user, receiver.url, ["sms:received"])
        phone = await pair_phone(user)
        await phone.inbox([{"phoneNumber": "+5215512345678", "message": "hola"}])
        seen = []
        for _ in range(4):
            await deliver(app, short)
            seen.append(len(receiver.requests))
            clock.advance(timedelta(seconds=2.5))
        assert seen == [1, 2, 2, 2]  # the second retry is due a minute later
        clock.advance(timedelta(seconds=60))
        await deliver(app, short)
        assert len(receiver.requests) == 3
        clock.advance(timedelta(days=6))
        await deliver(app, short)
        assert len(receiver.requests) == 3  # failed after the schedule's last retry
        path = f"/api/webhooks/{hook['id']}/deliveries"
        listed = await user.client.get(path, headers=user.auth)
        assert [d["status"] for d in listed.json()["data"]] == ["failed"], listed.text


async def _ingest(user, phone) -> Callable[[str, dict], Awaitable[None]]:
    """Post events to our ingest URL as the stock app does: signed with its device key."""
    key = (await phone.settings())["webhooks"]["signing_key"]
    path = f"/api/mobile/v1/ingest/{phone.device_id}"

    async def post(event: str, payload: dict) -> None:
        body = json.dumps(
            {
                "id": f"{event}-{payload.get('messageId', '')}",
                "webhookId": "w",
                "event": event,
                "deviceId": phone.device_id,
                "payload": payload,
            }
        ).encode()
        stamp = str(int(time.time()))
        signature = hmac.new(key.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()
        resp = await user.client.post(
            path,
            content=body,
            headers={
                "X-Signature": signature,
                "X-Timestamp": stamp,
                "Content-Type": "application/json",
            },
        )
        assert resp.status_code == 204, resp.text

    return post


async def test_a_received_sms_with_an_odd_sim_number_is_kept_without_one(make_user) -> None:
    """The stock app's sms:received is taken leniently: a SIM number that is not 1 to 3 (a
    string, a number past the database's integers) is an unknown SIM, never a refusal."""
    user = await make_user()
    phone = await pair_phone(user)
    post = await _ingest(user, phone)
    for index, sim in enumerate(["2", 10**30, True, 2]):
        await post(
            "sms:received",
            {
                "messageId": f"in-{index}",
                "phoneNumber": "+5215512345678",
                "message": f"m{index}",
                "simNumber": sim,
            },
        )
    received = await user.client.get("/api/v1/inbox", headers=user.auth)
    by_text = {m["message"]: m["simNumber"] for m in received.json()["data"]}
    assert by_text == {"m0": None, "m1": None, "m2": None, "m3": 2}


async def test_events_the_app_reports_as_webhooks_reach_ours(make_user, app) -> None:
    """The stock app's own mms:received, mms:downloaded and system:ping, signed with its device
    key and posted to our ingest URL, become our events."""
    user = await make_user()
    phone = await pair_phone(user)
    post = await _ingest(user, phone)
    async with receiving() as receiver:
        await _hook(user, receiver.url, ["mms:received", "mms:downloaded", "system:ping"])
        await post(
            "mms:received",
            {
                "messageId": "mms-1",
                "sender": "+5215512345678",
                "transactionId": "t1",
                "subject": "Foto",
                "size": 2048,
                "receivedAt": "2026-03-13T10:05:42.000+01:00",
            },
        )
        await post(
            "mms:downloaded",
            {
                "messageId": "mms-1",
                "sender": "+5215512345678",
                "subject": "Foto",
                "body": "mira",
                "attachments": [
                    {"partId": 1, "contentType": "image/jpeg", "size": 2048, "data": "AAAA"}
                ],
                "receivedAt": "2026-03-13T10:05:50.000+01:00",
            },
        )
        await post("system:ping", {"health": {"status": "pass", "checks": {}}})
        await deliver(app)
    by_event = {r.headers["x-smsgw-event"]: json.loads(r.body) for r in receiver.requests}
    assert set(by_event) == {"mms:received", "mms:downloaded", "system:ping"}
    downloaded = by_event["mms:downloaded"]["payload"]
    assert downloaded["messageId"] == by_event["mms:received"]["payload"]["messageId"]
    assert downloaded["attachments"] == [
        {"partId": 1, "contentType": "image/jpeg", "name": None, "size": 2048, "hasData": True}
    ]
    assert by_event["system:ping"]["payload"]["health"]["status"] == "pass"


async def test_a_kept_alive_connection_closed_under_a_delivery_is_not_a_failure(
    make_user, app
) -> None:
    """A receiver that closes an idle connection just as the next delivery is written to it
    (here: it answers one request per connection, then reads the next and hangs up): the
    delivery goes again at once on another connection, and its log shows one attempt, a 200."""
    answered: list[bytes] = []

    async def one_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            for index in (0, 1):
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                if index:
                    break  # read, never answered: the close a kept-alive request can meet
                answered.append(body)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(one_per_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    user = await make_user()
    try:
        hook = await _hook(user, f"http://127.0.0.1:{port}/hook", ["system:ping"])
        for _ in range(2):  # the second delivery is written to the first one's connection
            await user.client.post(f"/api/webhooks/{hook['id']}/test", headers=user.auth)
            await deliver(app)
    finally:
        server.close()
        await server.wait_closed()
    log = (
        await user.client.get(f"/api/webhooks/{hook['id']}/deliveries", headers=user.auth)
    ).json()["data"]
    assert len(answered) == 2
    assert [(d["status"], d["attempts"]) for d in log] == [("succeeded", 1), ("succeeded", 1)]
    assert [h["statusCode"] for d in log for h in d["history"]] == [200, 200]
