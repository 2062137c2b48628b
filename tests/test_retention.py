"""Retention: old message bodies and numbers forgotten, old logs and deliveries removed."""

from __future__ import annotations

from datetime import timedelta

from smsgate.kit import clock
from smsgate.worker import retention
from tests.factories import pair_phone, send


async def test_old_finished_messages_lose_body_and_numbers(make_user, app, settings) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    done = (await send(user, message="secreto viejo")).json()["id"]
    waiting = (await send(user, message="aún en cola", deviceId=phone.device_id)).json()["id"]
    pulled = await phone.pull()
    assert done in {m["id"] for m in pulled}
    await phone.report(done, "Delivered", [("+5215555555555", "Delivered", None)])
    clock.advance(timedelta(days=31))
    keep_30 = settings.model_copy(update={"retention_message_days": 30, "retention_log_days": 30})
    # the job prunes in batches of retention.BATCH, walking the messages in id order, once a
    # tick; the database holds the other tests' messages too: run passes until the walk has
    # caught up with the cutoff
    passes: list[dict[str, int]] = []
    while True:
        assert len(passes) < 500, "retention's walk does not move on"
        walked = retention._walk.after
        passes.append(await retention.prune(app.state.db, keep_30))
        if retention._walk.after == walked:
            break
    assert sum(p["messages"] for p in passes) >= 1 and passes[0]["logs"] >= 1
    old = (await user.client.get(f"/api/v1/messages/{done}", headers=user.auth)).json()
    assert old["message"] is None and old["state"] == "delivered"
    assert old["recipients"][0]["phoneNumber"].startswith("hash:")
    kept = (await user.client.get(f"/api/v1/messages/{waiting}", headers=user.auth)).json()
    assert kept["message"] == "aún en cola"  # not finished: kept
    logs = (
        await user.client.get(f"/api/devices/{phone.device_id}/logs", headers=user.auth)
    ).json()["data"]
    assert logs == []
    again = await retention.prune(app.state.db, keep_30)  # nothing left to do: idempotent
    assert again == {"messages": 0, "deliveries": 0, "logs": 0}


async def test_a_batch_that_fails_to_be_written_is_taken_again(
    make_user, app, settings, monkeypatch
) -> None:
    """The walk moves past a batch only once it is written: a pass that fails (the database
    down, the disk full) leaves it where it was, and the next pass forgets those messages."""
    user = await make_user()
    phone = await pair_phone(user)
    done = (await send(user, message="se olvida")).json()["id"]
    assert done in {m["id"] for m in await phone.pull()}
    await phone.report(done, "Delivered", [("+5215555555555", "Delivered", None)])
    clock.advance(timedelta(days=31))
    keep_30 = settings.model_copy(update={"retention_message_days": 30})
    retention._walk.after, retention._walk.started_at = "", None

    async def failing(database, chosen) -> None:
        raise RuntimeError("the write failed")

    with monkeypatch.context() as patched:
        patched.setattr(retention, "_forget", failing)
        while True:  # up to the batch holding the message, which fails
            try:
                await retention.prune(app.state.db, keep_30)
            except RuntimeError:
                break
    stuck = retention._walk.after
    assert stuck < done  # not past the message that was not forgotten
    while True:
        walked = retention._walk.after
        await retention.prune(app.state.db, keep_30)
        if retention._walk.after == walked:
            break
    old = (await user.client.get(f"/api/v1/messages/{done}", headers=user.auth)).json()
    assert old["message"] is None
