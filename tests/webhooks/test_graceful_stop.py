"""Stopping a worker lets the webhook POST in flight finish and be recorded, instead of leaving
it to its lease (and a second delivery a minute later)."""

from __future__ import annotations

import asyncio

from smsgate.webhooks.delivery import deliver_forever
from tests.factories import pair_phone
from tests.webhooks.receiver import receiving


async def test_stop_waits_for_the_delivery_in_flight(make_user, app, settings) -> None:
    user = await make_user()
    async with receiving() as receiver:
        receiver.delay = 1.0  # the receiver answers a second after the request arrived
        hook = await user.client.post(
            "/api/webhooks",
            json={"url": receiver.url, "events": ["sms:received"]},
            headers=user.auth,
        )
        assert hook.status_code == 201, hook.text
        phone = await pair_phone(user)
        await phone.inbox([{"phoneNumber": "+5215512345678", "message": "hola", "id": "g1"}])
        stopping = asyncio.Event()
        task = asyncio.get_running_loop().create_task(
            deliver_forever(app.state.db, app.state.webhook_http, settings, stopping=stopping)
        )
        for _ in range(200):
            if receiver.requests:
                break
            await asyncio.sleep(0.02)
        assert len(receiver.requests) == 1  # in flight: the receiver has not answered yet
        stopping.set()
        await asyncio.wait_for(task, 10)  # returns by itself once the round is recorded
    deliveries = await user.client.get(
        f"/api/webhooks/{hook.json()['id']}/deliveries", headers=user.auth
    )
    [delivery] = deliveries.json()["data"]
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 1


async def test_an_api_process_beside_a_worker_stops_at_once(app) -> None:
    """Its only task (vouching for open streams) ends when asked, instead of sitting out the
    grace period until it is cancelled."""
    from smsgate.worker.jobs import EmbeddedWorker

    worker = EmbeddedWorker(app)
    worker.start_presence_only()
    await asyncio.sleep(0.05)
    await asyncio.wait_for(worker.stop(grace=60), 10)
