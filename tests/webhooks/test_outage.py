"""A receiver that is down, failing or hanging: nothing is given up silently, and one webhook's
trouble holds back no other webhook."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import timedelta

from smsgate.kit import clock
from smsgate.webhooks.delivery import SCHEDULE, deliver_forever
from smsgate.webhooks.events import NewEvent, emit
from smsgate.webhooks.payloads import Ping
from tests.factories import pair_phone
from tests.webhooks.receiver import receiving
from tests.webhooks.test_delivery import _hook, deliver

OLD_DISABLE_THRESHOLD = 100  # consecutive failed attempts that used to disable an endpoint


async def _messages(phone, prefix: str, count: int) -> None:
    await phone.inbox(
        [
            {"phoneNumber": "+5215512345678", "message": f"{prefix}{i}", "id": f"{prefix}{i}"}
            for i in range(count)
        ]
    )


def _texts(receiver) -> Counter[str]:
    return Counter(
        json.loads(r.body)["payload"]["message"]
        for r in receiver.requests
        if r.headers["x-smsgw-event"] == "sms:received"
    )


async def test_an_outage_past_the_old_threshold_loses_nothing(make_user, app) -> None:
    """Down for two hours with 150 events (over 200 failed attempts, past the 100 that used to
    disable the endpoint and drop everything after), then up: every event arrives exactly once
    to each endpoint, with no replay by hand."""
    user = await make_user()
    phone = await pair_phone(user)
    async with receiving() as down, receiving() as healthy:
        broken = await _hook(user, down.url, ["sms:received"])
        await _hook(user, healthy.url, ["sms:received"])
        down.status = 503
        await _messages(phone, "a", 100)
        await deliver(app)
        clock.advance(timedelta(seconds=SCHEDULE[0] * 1.2))
        await deliver(app)  # every event has failed twice now: 200 attempts
        await _messages(phone, "b", 50)  # events of the outage are queued for it too
        for _ in range(4):
            clock.advance(timedelta(minutes=30))
            await deliver(app)
        assert len(down.requests) > 2 * OLD_DISABLE_THRESHOLD
        shown = (await user.client.get(f"/api/webhooks/{broken['id']}", headers=user.auth)).json()
        assert shown["enabled"] is True
        down.status = 200
        failed_before = len(down.requests)
        clock.advance(timedelta(hours=3))
        await deliver(app)
        expected = Counter({f"{p}{i}": 1 for p, n in (("a", 100), ("b", 50)) for i in range(n)})
        assert _texts(healthy) == expected
        back = Counter(
            json.loads(r.body)["payload"]["message"] for r in down.requests[failed_before:]
        )
        assert back == expected  # each event once after the outage, none lost, none twice


async def test_failing_for_days_disables_holds_and_tells_the_other_webhooks(make_user, app) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    async with receiving() as down, receiving() as watcher:
        broken = await _hook(user, down.url, ["sms:received"])
        await _hook(user, watcher.url, ["webhook:disabled"])
        down.status = 500
        await _messages(phone, "x", 3)
        for _ in range(11):  # five and a half days of retries, all failing
            await deliver(app)
            clock.advance(timedelta(hours=12))
        await deliver(app)
        shown = (await user.client.get(f"/api/webhooks/{broken['id']}", headers=user.auth)).json()
        assert shown["enabled"] is False
        assert "no delivery succeeded since" in shown["disabledReason"]
        notices = [json.loads(r.body) for r in watcher.requests]
        assert [n["event"] for n in notices] == ["webhook:disabled"]
        assert notices[0]["payload"]["webhookId"] == broken["id"]
        assert notices[0]["payload"]["failingSince"].endswith("Z")
        held = (
            await user.client.get(
                f"/api/webhooks/{broken['id']}/deliveries?status=held", headers=user.auth
            )
        ).json()["data"]
        assert len(held) == 3  # kept, not failed
        for page in ("/dashboard", "/dashboard/webhooks"):
            shown_page = await user.client.get(page, headers={"Accept-Language": "es-MX"})
            assert "Webhooks desactivados porque su receptor falló" in shown_page.text, page
        tried = len(down.requests)
        await _messages(phone, "y", 2)  # while it is disabled: held for it, not sent
        clock.advance(timedelta(days=1))
        await deliver(app)
        assert len(down.requests) == tried
        down.status = 200
        enabled = await user.client.patch(
            f"/api/webhooks/{broken['id']}", json={"enabled": True}, headers=user.auth
        )
        assert enabled.status_code == 200
        await deliver(app)
        assert "Webhooks desactivados" not in (await user.client.get("/dashboard")).text
        arrived = Counter(json.loads(r.body)["payload"]["message"] for r in down.requests[tried:])
        assert arrived == Counter({"x0": 1, "x1": 1, "x2": 1, "y0": 1, "y1": 1})


async def test_a_hanging_receiver_holds_back_no_other_account(make_user, app) -> None:
    """Tenant A's receiver accepts and never answers, with 1,000 deliveries queued; tenant B's
    event is delivered within a few seconds all the same."""
    a, b = await make_user(), await make_user()
    release = asyncio.Event()
    async with receiving() as hanging, receiving() as fine:
        hanging.hang = release
        hook_a = await _hook(a, hanging.url, ["system:ping"])
        await _hook(b, fine.url, ["sms:received"])
        async with app.state.db.transaction() as session:
            await emit(
                session,
                [NewEvent(a.account_id, "system:ping", None, _ping(i)) for i in range(1000)],
            )
        stopping = asyncio.Event()
        worker = asyncio.create_task(
            deliver_forever(
                app.state.db, app.state.webhook_http, app.state.settings, 0.05, stopping
            )
        )
        try:
            while len(hanging.requests) < 4:  # A's receiver is now holding its requests
                await asyncio.sleep(0.02)
            phone_b = await pair_phone(b)
            started = time.monotonic()
            await phone_b.inbox([{"phoneNumber": "+5215512345678", "message": "for b"}])
            while not fine.requests and time.monotonic() - started < 30:
                await asyncio.sleep(0.02)
            took = time.monotonic() - started
            assert [json.loads(r.body)["payload"]["message"] for r in fine.requests] == ["for b"]
            assert took < 3, took
            assert len(hanging.requests) == 4  # never more than four at once to one webhook
        finally:
            stopping.set()
            release.set()
            await asyncio.wait_for(worker, 30)
        # at the stop, the requests under way finished and were recorded (the four held ones,
        # and those the released gate let go before the stop took effect); every claim not
        # begun was handed back: pending, its attempt uncounted, claimable at once
        by_status: Counter[str] = Counter()
        cursor = ""
        while True:
            page = (
                await a.client.get(
                    f"/api/webhooks/{hook_a['id']}/deliveries?limit=100{cursor}", headers=a.auth
                )
            ).json()
            for delivery in page["data"]:
                by_status[delivery["status"]] += 1
                if delivery["status"] == "pending":
                    assert delivery["attempts"] == 0, delivery
            if not page["nextCursor"]:
                break
            cursor = f"&cursor={page['nextCursor']}"
        assert by_status["succeeded"] >= 4 and by_status["succeeded"] + by_status["pending"] == 1000
        # the rest of the backlog would be tried by the next tests' rounds: gone with its webhook
        await a.client.delete(f"/api/webhooks/{hook_a['id']}", headers=a.auth)


def _ping(n: int) -> Ping:
    return Ping(deviceId=None, health={"n": n})
