"""Plans, metering, the exact quota, creation limits, rollover and the billing endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from smsgate.app import create_app
from smsgate.kit import clock
from tests.factories import BASE_URL, PASSWORD, unique_email

PLANS = """
[plans.tiny]
name = "Tiny"
messages_per_period = 10
devices = 1
webhooks = 1
api_keys = 2
requests_per_minute = 1000
channels = ["sms", "data"]

[plans.free]
name = "Free"
messages_per_period = 500
devices = 1
webhooks = 2
api_keys = 2
requests_per_minute = 120
channels = ["sms", "data"]
"""


@pytest.fixture
async def tiny_app(settings, tmp_path) -> AsyncIterator[FastAPI]:
    path = tmp_path / "plans.toml"
    path.write_text(PLANS)
    application = create_app(
        settings.model_copy(update={"plans_file": str(path), "default_plan": "tiny"})
    )
    yield application
    await application.state.send_writer.close()
    await application.state.webhook_http.aclose()
    await application.state.db.dispose()


@asynccontextmanager
async def _account(app: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        signup = await client.post(
            "/api/auth/signup", json={"email": unique_email("bill"), "password": PASSWORD}
        )
        key = await client.post(
            "/api/keys", json={"name": "k"}, headers={"X-CSRF-Token": signup.json()["csrfToken"]}
        )
        yield client, {"Authorization": f"Bearer {key.json()['key']}"}


def _send(client, auth, **fields):
    body = {"phoneNumbers": ["+5215555555555"], "message": "hola", **fields}
    return client.post("/api/v1/send", json=body, headers=auth)


async def test_twenty_concurrent_sends_with_ten_left_accept_exactly_ten(tiny_app) -> None:
    async with _account(tiny_app) as (client, auth):
        results = await asyncio.gather(*(_send(client, auth, message=f"m{i}") for i in range(20)))
        statuses = sorted(r.status_code for r in results)
        assert statuses == [202] * 10 + [402] * 10
        refused = next(r for r in results if r.status_code == 402).json()
        assert refused["code"] == "quota_exceeded"
        assert refused["error"].startswith(
            "monthly message quota of plan Tiny used up (10/10); it resets on "
        )
        assert refused["used"] == 10 and refused["limit"] == 10
        listed = (await client.get("/api/v1/messages?limit=100", headers=auth)).json()["data"]
        assert len(listed) == 10  # a refused send changes nothing
        billing = (await client.get("/api/billing", headers=auth)).json()
        assert billing["usage"]["messages"] == 10 and billing["remaining"]["messages"] == 0
        assert billing["usage"]["byChannel"]["sms"] == {"messages": 10, "segments": 10}


async def test_sends_that_fit_together_are_debited_and_one_that_does_not_is_refused(
    tiny_app,
) -> None:
    """The writer debits a batch's sends to one quota at once when they all fit, and one at a
    time when they do not: of sends of 4, 4, 4 and 2 recipients with 10 left, whatever their
    order, exactly one send of 4 is refused and the quota is used up exactly."""
    groups = [
        ["+5215512345678", "+5215587654321", "+5215533334444", "+5215522221111"],
        ["+5215544447777", "+5215566669999", "+5215577771234", "+5215588885678"],
        ["+5215599991357", "+5215511112468", "+5215524683579", "+5215535794680"],
        ["+5215546805791", "+5215557916802"],
    ]
    async with _account(tiny_app) as (client, auth):
        results = await asyncio.gather(
            *(
                _send(client, auth, phoneNumbers=numbers, message=f"m{i}")
                for i, numbers in enumerate(groups)
            )
        )
        by_size = sorted(
            (len(numbers), r.status_code) for numbers, r in zip(groups, results, strict=True)
        )
        assert [status for _, status in by_size].count(402) == 1
        assert (4, 402) in by_size and (2, 202) in by_size
        usage = (await client.get("/api/billing", headers=auth)).json()["usage"]
        assert usage["messages"] == 10
        listed = (await client.get("/api/v1/messages?limit=100", headers=auth)).json()["data"]
        assert sorted(len(m["recipients"]) for m in listed) == [2, 4, 4]


async def test_an_account_past_its_quota_holds_back_no_other_accounts_sends(tiny_app) -> None:
    """Two accounts' sends share the writer's batches: one account's 15 sends with 10 left
    take some batch past its quota, whose sends are then debited one at a time. The other
    account's sends all land, its send to an opted-out number included (that recipient free),
    and both accounts' period and day counters count exactly what was accepted."""
    async with _account(tiny_app) as (client_a, auth_a), _account(tiny_app) as (client_b, auth_b):
        opted = "+5215511112222"
        added = await client_b.post("/api/opt-outs", json={"phoneNumber": opted}, headers=auth_b)
        assert added.status_code == 201
        sends_a = [_send(client_a, auth_a, message=f"a{i}") for i in range(15)]
        sends_b = [_send(client_b, auth_b, message=f"b{i}") for i in range(5)]
        sends_b.append(_send(client_b, auth_b, phoneNumbers=["+5215555555555", opted]))
        interleaved = [send for pair in zip(sends_a, sends_b, strict=False) for send in pair]
        results = await asyncio.gather(*interleaved, *sends_a[len(sends_b) :])
        # a0, b0, ... a5, b5, then a6 ... a14
        statuses_a = sorted(r.status_code for r in results[0:12:2] + results[12:])
        statuses_b = sorted(r.status_code for r in results[1:12:2])
        assert statuses_a == [202] * 10 + [402] * 5
        assert statuses_b == [202] * 6
        today = clock.now().date().isoformat()
        for client, auth, used in ((client_a, auth_a, 10), (client_b, auth_b, 6)):
            billing = (await client.get("/api/billing", headers=auth)).json()
            assert billing["usage"]["messages"] == used
            days = await client.get(
                "/api/billing/usage", params={"from": today, "to": today}, headers=auth
            )
            assert days.json()["data"][0]["messages"] == used
        listed = (await client_b.get("/api/v1/messages?limit=100", headers=auth_b)).json()
        states = sorted(r["state"] for m in listed["data"] for r in m["recipients"])
        assert states == ["failed"] + ["processing"] * 6


async def test_replays_are_not_counted_and_multi_recipient_sends(tiny_app) -> None:
    async with _account(tiny_app) as (client, auth):
        first = await _send(
            client, auth, externalId="once", phoneNumbers=["+5215555555555", "+525512345678"]
        )
        assert first.status_code == 202
        for _ in range(3):
            assert (
                await _send(
                    client,
                    auth,
                    externalId="once",
                    phoneNumbers=["+5215555555555", "+525512345678"],
                )
            ).status_code == 200
        usage = (await client.get("/api/billing", headers=auth)).json()["usage"]
        assert usage["messages"] == 2  # one per recipient, counted once
        long_text = "a" * 200  # two segments
        assert (await _send(client, auth, message=long_text)).status_code == 202
        usage = (await client.get("/api/billing", headers=auth)).json()["usage"]
        assert usage["messages"] == 3 and usage["segments"] == 4
        too_many = await _send(client, auth, phoneNumbers=[f"+52155{i:08d}" for i in range(8)])
        assert too_many.status_code == 402
        assert "sending 8 messages would pass" in too_many.json()["error"]
        assert (await client.get("/api/billing", headers=auth)).json()["usage"]["messages"] == 3


async def test_the_quota_resets_with_the_next_period(tiny_app) -> None:
    async with _account(tiny_app) as (client, auth):
        for i in range(10):
            assert (await _send(client, auth, message=f"m{i}")).status_code == 202
        refused = await _send(client, auth)
        assert refused.status_code == 402
        period = (await client.get("/api/billing", headers=auth)).json()["period"]
        assert refused.json()["resetsAt"] == period["end"]
        clock.advance(timedelta(days=32))
        assert (await _send(client, auth)).status_code == 202
        billing = (await client.get("/api/billing", headers=auth)).json()
        assert billing["usage"]["messages"] == 1 and billing["period"]["start"] == period["end"]
        days = (
            await client.get(
                "/api/billing/usage",
                params={"from": "2020-01-01", "to": "2020-01-03"},
                headers=auth,
            )
        ).json()
        assert [d["date"] for d in days["data"]] == ["2020-01-01", "2020-01-02", "2020-01-03"]


async def test_channels_and_creation_limits(tiny_app) -> None:
    async with _account(tiny_app) as (client, auth):
        mms = await _send(
            client, auth, channel="mms", message=None, mediaUrls=["https://example.com/a.jpg"]
        )
        assert mms.status_code == 402 and mms.json()["code"] == "channel_not_in_plan"
        assert (
            await client.post("/api/devices/android", json={"name": "a"}, headers=auth)
        ).status_code == 201
        second = await client.post("/api/devices/android", json={"name": "b"}, headers=auth)
        assert second.status_code == 402 and second.json()["code"] == "plan_limit"
        assert "allows 1 devices" in second.json()["error"]
        hook = {"url": "https://hooks.example.com/x", "events": ["sms:sent"]}
        assert (await client.post("/api/webhooks", json=hook, headers=auth)).status_code == 201
        assert (await client.post("/api/webhooks", json=hook, headers=auth)).status_code == 402
        assert (await client.post("/api/keys", json={"name": "2"}, headers=auth)).status_code == 201
        third = await client.post("/api/keys", json={"name": "3"}, headers=auth)
        assert third.status_code == 402
        remaining = (await client.get("/api/billing", headers=auth)).json()["remaining"]
        assert remaining == {
            "messages": 10,
            "devices": 0,
            "webhooks": 0,
            "apiKeys": 0,
            "storageBytes": None,  # the test plan keeps files without limit
        }


async def test_concurrent_device_creation_takes_the_last_place_once(tiny_app) -> None:
    async with _account(tiny_app) as (client, auth):
        results = await asyncio.gather(
            *(
                client.post("/api/devices/android", json={"name": f"d{i}"}, headers=auth)
                for i in range(5)
            )
        )
        assert sorted(r.status_code for r in results) == [201, 402, 402, 402, 402]


async def test_billing_shape_inbound_metering_and_tenancy(tiny_app) -> None:
    from smsgate.agents.phone import DeviceClient

    async with _account(tiny_app) as (client, auth), _account(tiny_app) as (other, other_auth):
        created = await client.post("/api/devices/android", json={"name": "a"}, headers=auth)
        phone = DeviceClient(f"{BASE_URL}/api/mobile/v1", http=client)
        await phone.register(pairing_token=created.json()["pairing"]["token"])
        await phone.inbox([{"phoneNumber": "+5215512345678", "message": "hola"}])
        await _send(client, auth)
        billing = (await client.get("/api/billing", headers=auth)).json()
        assert (
            billing["plan"]["id"] == "tiny" and billing["plan"]["limits"]["messagesPerPeriod"] == 10
        )
        assert billing["usage"]["inbound"]["sms"] == 1 and billing["usage"]["devices"] == 1
        today = clock.now().date().isoformat()
        chart = (await client.get("/api/billing/usage", headers=auth)).json()["data"]
        assert len(chart) == 30 and chart[-1]["date"] == today
        assert chart[-1]["messages"] == 1 and chart[-1]["inbound"] == 1
        theirs = (await other.get("/api/billing", headers=other_auth)).json()
        assert theirs["usage"]["messages"] == 0 and theirs["usage"]["devices"] == 0
        bad = await client.get("/api/billing/usage", params={"granularity": "hour"}, headers=auth)
        assert bad.status_code == 400
        reader = await client.post(
            "/api/keys", json={"name": "r", "scopes": ["messages:read"]}, headers=auth
        )
        denied = await client.get(
            "/api/billing", headers={"Authorization": f"Bearer {reader.json()['key']}"}
        )
        assert denied.status_code == 403


def test_periods_follow_the_anchor_day() -> None:
    from datetime import UTC, datetime

    from smsgate.billing.plans import period

    anchor = datetime(2026, 1, 31, 15, tzinfo=UTC)
    assert period(anchor, datetime(2026, 2, 10, tzinfo=UTC)) == (
        datetime(2026, 1, 31, tzinfo=UTC),
        datetime(2026, 2, 28, tzinfo=UTC),
    )
    assert period(anchor, datetime(2026, 3, 5, tzinfo=UTC)) == (
        datetime(2026, 2, 28, tzinfo=UTC),
        datetime(2026, 3, 31, tzinfo=UTC),
    )
    assert period(anchor, datetime(2026, 12, 31, 1, tzinfo=UTC)) == (
        datetime(2026, 12, 31, tzinfo=UTC),
        datetime(2027, 1, 31, tzinfo=UTC),
    )


LIMITED = (
    PLANS
    + """
[plans.limited]
name = "Limited"
messages_per_period = -1
devices = -1
webhooks = -1
api_keys = -1
requests_per_minute = 5
channels = ["sms"]
"""
)


async def test_api_rate_limit_per_account(settings, tmp_path) -> None:
    path = tmp_path / "limited.toml"
    path.write_text(LIMITED)
    app = create_app(
        settings.model_copy(update={"plans_file": str(path), "default_plan": "limited"})
    )
    try:
        async with _account(app) as (client, auth):  # signup + key creation use 1 of the session's
            answers = [await client.get("/api/v1/messages", headers=auth) for _ in range(6)]
            assert [a.status_code for a in answers] == [200] * 5 + [429]
            for index, answer in enumerate(answers[:5]):
                r, t = answer.headers["RateLimit"].removeprefix('"default";').split(";")
                assert r == f"r={4 - index}"  # down by exactly one per request
                assert abs(int(t[2:]) - 12 * (index + 1)) <= 1
            assert answers[0].headers["RateLimit-Policy"] == '"default";q=5;w=60'
            refused = answers[5]
            assert refused.json()["code"] == "rate_limited"
            assert int(refused.headers["Retry-After"]) >= 1
            assert "5 requests a minute" in refused.json()["error"]
            # a token minted by the session, like another key, shares the account's API budget
            me = (await client.get("/api/auth/me")).json()  # the session cookie
            again = await client.post(
                "/api/auth/login", json={"email": me["email"], "password": PASSWORD}
            )
            minted = await client.post(
                "/api/auth/token", json={}, headers={"X-CSRF-Token": again.json()["csrfToken"]}
            )
            assert minted.status_code == 201, minted.text
            bearer = {"Authorization": f"Bearer {minted.json()['accessToken']}"}
            assert (await client.get("/api/v1/messages", headers=bearer)).status_code == 429
            # the browser (the session cookie, the dashboard) has a budget of its own, which
            # the dashboard's pages count too
            pages = [(await client.get("/dashboard")).status_code for _ in range(5)]
            assert 429 in pages, pages
    finally:
        await app.state.send_writer.close()
        await app.state.webhook_http.aclose()
        await app.state.db.dispose()


async def test_the_rate_limit_is_shared_by_server_processes(settings, tmp_path) -> None:
    if settings.is_sqlite:
        pytest.skip("SQLite runs one server process; its limiter lives in that process")
    path = tmp_path / "limited.toml"
    path.write_text(LIMITED)
    limited = settings.model_copy(update={"plans_file": str(path), "default_plan": "limited"})
    first, second = create_app(limited), create_app(limited)
    try:
        async with _account(first) as (client, auth):
            transport = httpx.ASGITransport(app=second, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as other:
                statuses = []
                for i in range(8):
                    target = client if i % 2 else other
                    answer = await target.get("/api/v1/messages", headers=auth)
                    statuses.append(answer.status_code)
        assert statuses.count(200) == 5 and statuses.count(429) == 3
    finally:
        for app in (first, second):
            await app.state.send_writer.close()
            await app.state.webhook_http.aclose()
            await app.state.db.dispose()
