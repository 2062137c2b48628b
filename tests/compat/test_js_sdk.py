"""The ecosystem's npm SDK (`android-sms-gateway`, unchanged) against a live server: every public
method once, each answer checked against the SDK's own type declarations, with a password the
SDK encodes as ISO-8859-1, a simulated phone, and the webhook it registers delivered over HTTPS
in the Android app's format and signature scheme.

The driver is `js_sdk/check.mjs`; its packages are pinned by `js_sdk/package-lock.json` and
installed with `npm ci` on first use. Where Node.js is absent the test is skipped, loudly.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from smsgate.webhooks.delivery import deliver_due
from tests.factories import pair_phone
from tests.serving import loopback_certificate
from tests.webhooks.receiver import receiving

JS = Path(__file__).parent / "js_sdk"
# every public method of the SDK's Client (3.0.0)
METHODS = {
    "send",
    "getState",
    "getWebhooks",
    "registerWebhook",
    "deleteWebhook",
    "getDevices",
    "deleteDevice",
    "getHealth",
    "exportInbox",
    "getLogs",
    "getSettings",
    "updateSettings",
    "patchSettings",
}
PASSWORD = "contraseña de la clínica"


@pytest.fixture(scope="session")
def js_sdk() -> Path:
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.skip("THE npm SDK TESTS DID NOT RUN: node and npm are not on PATH (Node.js 20+)")
    if not (JS / "node_modules" / "android-sms-gateway").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS,
            check=True,
            timeout=600,
        )
    return JS


async def _node(env: dict[str, str], *args: str, stdin: bytes | None = None) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        "node",
        "check.mjs",
        *args,
        cwd=JS,
        env={**os.environ, **env},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout=120)
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    failed = [check for check in result["checks"] if not check["ok"]]
    assert failed == [], json.dumps(failed, indent=1, ensure_ascii=False)
    return result


async def test_every_method_of_the_npm_sdk(make_user, live_server, app, js_sdk, tmp_path) -> None:
    user = await make_user(password=PASSWORD)
    tls = loopback_certificate(tmp_path)
    trusting = httpx.AsyncClient(verify=ssl.create_default_context(cafile=tls / "cert.pem"))
    async with (
        httpx.AsyncClient(timeout=10) as http,
        receiving(tls=tls) as receiver,
        trusting,
    ):
        phone = await pair_phone(user, http=http, base=live_server, name="recepción")
        spare = await pair_phone(user, http=http, base=live_server, name="spare")
        # a log line with a number in its details: the reference's context holds strings only
        await phone.logs(
            [{"message": "battery low", "priority": "WARN", "context": {"battery": 9}}]
        )
        env = {
            "SMSGATE_BASE": f"{live_server}/api/3rdparty/v1",
            "SMSGATE_LOGIN": user.email,
            "SMSGATE_PASSWORD": PASSWORD,
            "DEVICE_ID": phone.device_id,
            "SPARE_DEVICE_ID": spare.device_id,
            "HOOK_URL": receiver.url,
        }
        calls = await _node(env, "calls")
        checked = {check["name"].split()[0] for check in calls["checks"]}
        assert checked >= METHODS, METHODS - checked  # every method ran and was checked
        message_id = calls["messageId"]

        pulled = {m["id"]: m for m in await phone.pull()}
        assert message_id in pulled
        await phone.report(message_id, "Delivered", [("+5215555555555", "Delivered", None)])
        state = await _node(env, "state", message_id)
        assert state["state"] == "Delivered"

        while await deliver_due(app.state.db, trusting, app.state.settings):
            pass
        assert [r.headers["x-smsgw-event"] for r in receiver.requests] == ["sms:delivered"]
        delivery = receiver.requests[0]
        secret = (
            await user.client.get(f"/api/webhooks/{calls['webhookId']}/secret", headers=user.auth)
        ).json()["secret"]
        # the app's scheme: hex HMAC-SHA256 of the raw body followed by X-Timestamp
        expected = hmac.new(
            secret.encode(),
            delivery.body + delivery.headers["x-timestamp"].encode(),
            hashlib.sha256,
        ).hexdigest()
        assert hmac.compare_digest(delivery.headers["x-signature"], expected)
        body = json.loads(delivery.body)
        assert set(body) == {"id", "webhookId", "event", "deviceId", "payload"}
        assert body["webhookId"] == calls["webhookId"]
        assert body["deviceId"] == phone.device_id
        assert body["payload"]["messageId"] == message_id  # the id send returned
        assert body["payload"]["phoneNumber"] == "+5215555555555"
        assert body["payload"]["deliveredAt"].endswith("Z")
        await _node(env, "payloads", stdin=json.dumps([body]).encode())
