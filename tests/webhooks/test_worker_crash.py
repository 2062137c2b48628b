"""A worker process SIGKILLed in the middle of 500 deliveries, then restarted: every event is
delivered at least once and none more than twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.factories import pair_phone
from tests.webhooks.receiver import receiving


def _start_worker(settings, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SMSGATE_DATA_DIR": str(settings.data_dir),
        "SMSGATE_DATABASE_URL": settings.database_url,
        "SMSGATE_DATABASE_SCHEMA": settings.database_schema,
        "SMSGATE_SECRET_KEY": settings.secret_key,
        "SMSGATE_WEBHOOKS_ALLOW_PRIVATE": "true",
        "SMSGATE_WEBHOOK_LEASE_SECONDS": "3",
    }
    log = (tmp_path / "worker.log").open("ab")
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "smsgate"), "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def _until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def test_sigkill_mid_delivery_loses_nothing(make_user, settings, tmp_path) -> None:
    user = await make_user()
    async with receiving() as receiver:
        receiver.delay = 0.02  # slow enough that the kill lands mid-run
        hook = await user.client.post(
            "/api/webhooks",
            json={"url": receiver.url, "events": ["sms:received"]},
            headers=user.auth,
        )
        assert hook.status_code == 201
        phone = await pair_phone(user)
        for start in range(0, 500, 100):
            await phone.inbox(
                [
                    {"phoneNumber": "+5215512345678", "message": f"k{i}", "id": f"k{i}"}
                    for i in range(start, start + 100)
                ]
            )
        assert receiver.requests == []  # nothing delivers until a worker runs
        worker = _start_worker(settings, tmp_path)
        try:
            await _until(lambda: len(receiver.requests) >= 100, 60)
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
            killed_at = len(receiver.requests)
            assert killed_at < 500, "the kill came too late to test anything"
            worker = _start_worker(settings, tmp_path)
            await _until(
                lambda: len({r.headers["x-smsgw-id"] for r in receiver.requests}) >= 500, 120
            )
            await asyncio.sleep(4)  # past the lease: a late duplicate would show up by now
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    counts = Counter(r.headers["x-smsgw-id"] for r in receiver.requests)
    assert len(counts) == 500
    assert max(counts.values()) <= 2
