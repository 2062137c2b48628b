"""GET /metrics in the Prometheus text format."""

from __future__ import annotations

import asyncio
import contextlib

from smsgate.app import create_app
from smsgate.worker.jobs import run_jobs
from tests.factories import SCRAPER, new_client, pair_phone, send


async def test_metrics_report_requests_messages_queues_and_deliveries(
    make_user, client, app
) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    await send(user, message="metrics")
    await send(user, message="metrics 2", deviceId=phone.device_id)
    assert len(await phone.pull()) == 2  # two hand-overs, each observed
    await send(user, message="metrics 3")  # no phone has asked since: unclaimed
    await app.state.metrics.count_totals()  # the totals as of now (see the next test)
    await run_jobs(app)  # each periodic job's time is observed
    answer = await client.get("/metrics", headers=SCRAPER)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert 'smsgate_http_requests_total{method="POST",route="/api/v1/send",status="202"}' in text
    assert "smsgate_http_request_seconds_bucket" in text
    assert 'smsgate_messages{channel="sms",direction="out",state="processing"}' in text
    assert 'smsgate_queue_depth{device="unclaimed"}' in text
    assert "smsgate_connected_devices" in text
    assert 'smsgate_dispatch_seconds_bucket{channel="sms",le=' in text
    assert "smsgate_webhook_lag_seconds_bucket" in text
    assert "smsgate_webhook_due " in text
    for job in ("expire", "release", "retention", "campaigns"):
        assert f'smsgate_job_seconds_count{{job="{job}"}}' in text
    # this process's own figures
    assert 'python_gc_collections_total{generation="0"}' in text
    assert "process_cpu_seconds_total" in text
    assert "process_resident_memory_bytes" in text
    # a route's template, never a raw path with ids in it
    assert f"/api/v1/messages/{phone.device_id}" not in text


async def test_totals_are_counted_at_most_every_minute(make_user, client, app, monkeypatch) -> None:
    """The all-time totals walk whole tables: a scrape serves the last count and says its age;
    once it is older than TOTALS_EVERY, a scrape starts a new count in the background."""
    from smsgate.ops import metrics

    user = await make_user()
    await app.state.metrics.count_totals()
    data = 'smsgate_messages{channel="data",direction="out",state="processing"}'
    before = (await client.get("/metrics", headers=SCRAPER)).text
    sent = await user.client.post(
        "/api/v1/send",
        json={
            "phoneNumbers": ["+5215555555555"],
            "channel": "data",
            "message": "aGk=",
            "port": 53739,
        },
        headers=user.auth,
    )
    assert sent.status_code == 202, sent.text
    stale = (await client.get("/metrics", headers=SCRAPER)).text
    assert _count(stale, data) == _count(before, data)  # not counted again yet
    assert 0 <= _count(stale, "smsgate_totals_age_seconds") < metrics.TOTALS_EVERY
    assert "smsgate_totals_age_seconds" in stale
    monkeypatch.setattr(metrics, "TOTALS_EVERY", 0.0)
    await client.get("/metrics", headers=SCRAPER)  # starts the count, answers at once
    counting = app.state.metrics._counting
    assert counting is not None
    await counting
    fresh = (await client.get("/metrics", headers=SCRAPER)).text
    assert _count(fresh, data) == _count(before, data) + 1


async def test_a_background_count_that_fails_is_logged(client, app, monkeypatch, caplog) -> None:
    from smsgate.ops import metrics

    await app.state.metrics.count_totals()

    async def failing() -> None:
        raise RuntimeError("database away")

    monkeypatch.setattr(app.state.metrics, "count_totals", failing)
    monkeypatch.setattr(metrics, "TOTALS_EVERY", 0.0)
    answer = await client.get("/metrics", headers=SCRAPER)
    assert answer.status_code == 200  # the last totals are served meanwhile
    with contextlib.suppress(RuntimeError):
        await app.state.metrics._counting
    await asyncio.sleep(0)  # the task's done callback
    assert "counting the /metrics totals failed" in caplog.text


def _count(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


async def test_hand_overs_and_deliveries_are_observed(make_user, client, app) -> None:
    from tests.webhooks.receiver import receiving
    from tests.webhooks.test_delivery import _hook, deliver

    user = await make_user()
    phone = await pair_phone(user)
    dispatched = 'smsgate_dispatch_seconds_count{channel="sms"}'
    lagged = "smsgate_webhook_lag_seconds_count"
    sends_batched = 'smsgate_batch_size_sum{batcher="sends"}'
    send_batches = 'smsgate_batch_seconds_count{batcher="sends"}'
    reports_batched = 'smsgate_batch_size_sum{batcher="reports"}'
    before = (await client.get("/metrics", headers=SCRAPER)).text
    await send(user, message="a")
    await send(user, message="b")
    pulled = await phone.pull()
    assert len(pulled) == 2
    async with receiving() as receiver:
        await _hook(user, receiver.url, ["sms:received"])
        await phone.inbox([{"phoneNumber": "+5215512345678", "message": "hola"}])
        await deliver(app)
        assert len(receiver.requests) == 1
    after = (await client.get("/metrics", headers=SCRAPER)).text
    assert _count(after, dispatched) - _count(before, dispatched) == 2
    assert _count(after, lagged) - _count(before, lagged) == 1
    # the two sends went through the send writer's batches (one each: they were sent in turn)
    assert _count(after, sends_batched) - _count(before, sends_batched) == 2
    assert _count(after, send_batches) - _count(before, send_batches) == 2
    reported = _count(after, reports_batched)
    message = pulled[0]
    await phone.report(message["id"], "Sent", [(message["phoneNumbers"][0], "Sent", None)])
    assert (
        _count((await client.get("/metrics", headers=SCRAPER)).text, reports_batched) - reported
        == 1
    )


async def test_metrics_need_the_operators_token(client, settings, app) -> None:
    """/metrics shows every tenant's devices and queues: only the operator's scraper sees it,
    and without SMSGATE_METRICS_TOKEN it is off."""
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}):
        refused = await client.get("/metrics", headers=headers)
        assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
    assert (await client.get("/metrics", headers=SCRAPER)).status_code == 200
    off = create_app(settings.model_copy(update={"metrics_token": ""}))
    try:
        async with new_client(off) as other:
            answer = await other.get("/metrics", headers=SCRAPER)
            assert answer.status_code == 404 and "SMSGATE_METRICS_TOKEN" in answer.json()["error"]
    finally:
        await off.state.webhook_http.aclose()
        await off.state.db.dispose()
