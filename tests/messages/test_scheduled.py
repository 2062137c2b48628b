"""Scheduled sends (`scheduleAt`): held by the server until due, then handed over and the
phones woken; refused when the time cannot be kept."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from smsgate.kit import clock
from smsgate.worker.jobs import run_jobs
from tests.events import listening, until
from tests.factories import PASSWORD, pair_phone, send


async def test_a_scheduled_send_is_handed_to_no_phone_before_its_time(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    at = clock.now() + timedelta(hours=1)
    made = await send(user, scheduleAt=clock.iso(at))
    assert made.status_code == 202, made.text
    message = made.json()
    assert message["scheduleAt"] == clock.iso(at) and message["state"] == "processing"
    assert await phone.pull() == []
    clock.advance(timedelta(minutes=59))
    assert await phone.pull() == []
    fetched = await user.client.get(f"/api/v1/messages/{message['id']}", headers=user.auth)
    assert fetched.json()["scheduleAt"] == clock.iso(at)
    clock.advance(timedelta(minutes=1))
    pulled = await phone.pull()
    assert [m["id"] for m in pulled] == [message["id"]]
    assert pulled[0]["scheduleAt"] == clock.iso(at)  # as the app reads it; due already
    # an unscheduled send has no scheduleAt on the wire, and null in the answer
    plain = (await send(user)).json()
    assert plain["scheduleAt"] is None
    assert "scheduleAt" not in next(m for m in await phone.pull() if m["id"] == plain["id"])


async def test_a_scheduled_send_can_be_cancelled_while_it_waits(make_user) -> None:
    user = await make_user()
    await pair_phone(user)
    at = clock.now() + timedelta(days=2)
    message = (await send(user, scheduleAt=clock.iso(at))).json()
    cancel = await user.client.post(f"/api/v1/messages/{message['id']}/cancel", headers=user.auth)
    assert cancel.status_code == 200 and cancel.json()["state"] == "cancelled"


async def test_times_that_cannot_be_kept_are_refused(make_user) -> None:
    user = await make_user()
    now = clock.now()
    cases = {
        clock.iso(now - timedelta(minutes=1)): "is in the past",
        "2031-01-01T09:00:00": "needs a time zone",
        clock.iso(now + timedelta(days=400)): "at most a year ahead",
    }
    for value, reason in cases.items():
        refused = await send(user, scheduleAt=value)
        assert refused.status_code == 400, (value, refused.text)
        assert refused.json()["field"] == "scheduleAt" and reason in refused.json()["error"]
    late = await send(user, scheduleAt=clock.iso(now + timedelta(hours=2)), ttl=3600)
    assert late.status_code == 400 and "is not before the message expires" in late.json()["error"]
    listed = await user.client.get("/api/v1/messages", headers=user.auth)
    assert listed.json()["data"] == []  # nothing was stored


async def test_phones_are_woken_when_a_scheduled_send_falls_due(
    make_user, live_server, app
) -> None:
    user = await make_user()
    async with httpx.AsyncClient(timeout=10) as http:
        phone = await pair_phone(user, http=http, base=live_server)
        async with listening(phone, app) as frames:
            at = clock.now() + timedelta(minutes=10)
            made = await send(user, scheduleAt=clock.iso(at))
            assert made.status_code == 202
            await run_jobs(app)  # not due yet: no wake-up
            await asyncio.sleep(0.3)
            assert ("MessageEnqueued", None) not in frames
            clock.advance(timedelta(minutes=10))
            await run_jobs(app)
            await until(lambda: ("MessageEnqueued", None) in frames)
            assert [m["id"] for m in await phone.pull()] == [made.json()["id"]]


async def test_the_third_party_api_takes_schedule_at_as_the_python_client_writes_it(
    make_user,
) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    at = (clock.now() + timedelta(hours=3)).replace(tzinfo=None)
    body = {
        "textMessage": {"text": "más tarde"},
        "phoneNumbers": ["+5215512345678"],
        "scheduleAt": at.isoformat(),  # naive, six fractional digits: UTC
    }
    made = await user.client.post(
        "/api/3rdparty/v1/messages", json=body, auth=httpx.BasicAuth(user.email, PASSWORD)
    )
    assert made.status_code == 202, made.text
    assert made.json()["state"] == "Pending"
    assert await phone.pull() == []
    clock.advance(timedelta(hours=3))
    assert len(await phone.pull()) == 1
