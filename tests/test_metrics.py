"""GET /metrics in the Prometheus text format."""

from __future__ import annotations

from tests.factories import pair_phone, send


async def test_metrics_report_requests_messages_queues_and_deliveries(make_user, client) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    await send(user, message="metrics")
    await send(user, message="metrics 2", deviceId=phone.device_id)
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert 'smsgate_http_requests_total{method="POST",route="/api/v1/send",status="202"}' in text
    assert "smsgate_http_request_seconds_bucket" in text
    assert 'smsgate_messages{channel="sms",direction="out",state="processing"}' in text
    assert 'smsgate_queue_depth{device="unclaimed"}' in text
    assert "smsgate_connected_devices" in text
    # a route's template, never a raw path with ids in it
    assert f"/api/v1/messages/{phone.device_id}" not in text
