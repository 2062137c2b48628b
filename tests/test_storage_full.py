"""A full disk is named: 503 storage_full, /health/ready 503 until a write succeeds again.

The SQLite database lives on a small tmpfs of its own, filled to the last byte; mounting one
needs root (CI and this machine kind have it), so elsewhere the test is skipped with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from smsgate.app import create_app
from smsgate.config import Settings
from smsgate.storage import migrate
from tests.factories import BASE_URL, signup

DISK_BYTES = 24 * 1024 * 1024


@contextlib.contextmanager
def small_disk(folder: Path) -> Iterator[Path]:
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"SKIPPED: cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk` with one file; returns it (deleting it frees the space)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        for size in (65536, 1):  # big writes, then the last bytes one at a time
            while True:
                try:
                    out.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    return filler


async def test_a_full_disk_is_503_storage_full_and_not_ready(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        settings = Settings(
            data_dir=disk, secret_key="x" * 40, public_url=BASE_URL, default_plan="unlimited"
        ).resolved()
        await asyncio.to_thread(migrate.upgrade, settings)
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
                user = await signup(app)
                body = {"phoneNumbers": ["+525512345678"], "message": "Recordatorio de su cita"}
                first = await user.client.post("/api/v1/send", json=body, headers=user.auth)
                assert first.status_code == 202, first.text
                assert (await client.get("/health/ready")).status_code == 200

                # every page already in the files is reused by a write: empty the WAL first,
                # so that the next transaction must grow a file
                path = settings.database_url.split("///", 1)[1]
                with contextlib.closing(sqlite3.connect(path)) as direct:
                    direct.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                filler = fill(disk)

                refused = await user.client.post("/api/v1/send", json=body, headers=user.auth)
                assert refused.status_code == 503, refused.text
                assert refused.json()["code"] == "storage_full"
                assert refused.headers["Retry-After"]
                ready = await client.get("/health/ready")
                assert ready.status_code == 503
                assert "storage is full" in ready.json()["reason"]
                # a write of the API process itself (not the send writer's) is named alike
                hook = await user.client.post(
                    "/api/webhooks",
                    json={"url": "https://example.com/hook", "events": ["sms:sent"]},
                    headers=user.auth,
                )
                assert hook.status_code == 503, hook.text
                assert hook.json()["code"] == "storage_full"

                filler.unlink()
                again = await user.client.post("/api/v1/send", json=body, headers=user.auth)
                assert again.status_code == 202, again.text
                assert (await client.get("/health/ready")).status_code == 200
                listed = await user.client.get("/api/v1/messages", headers=user.auth)
                assert len(listed.json()["data"]) == 2  # the refused send left nothing
        finally:
            await app.state.send_writer.close()
            await app.state.reports.close()
            await app.state.webhook_http.aclose()
            await app.state.db.dispose()
