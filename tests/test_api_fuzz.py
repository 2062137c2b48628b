"""The whole HTTP API fuzzed against the real server (reliability checklist 34).

Schemathesis reads the server's own /openapi.json and sends what it generates from it: the
schema's examples, requests at and past every documented boundary, random valid and invalid
requests, and stateful sequences that follow the document's links (create a webhook, then read,
change, delete it and read it again). The run fails on any 5xx (`not_a_server_error`), on an
operation that declares a credential yet answers without one or with a wrong one
(`ignored_auth`), and on a resource still served after its DELETE succeeded
(`use_after_free`). It runs twice: with an account's API key over the account API and the
third-party API, and with a registered phone's token over the mobile API. Path parameters take
the id of a real object of the account half of the time (the rest are generated), so requests
reach past "not found" into each operation's own logic.

The seed is fixed, so a run is repeatable (the ids the server hands out differ, so stateful
sequences may too); SMSGATE_TEST_FUZZ_EXAMPLES raises the number of cases per operation for a
longer hunt. Generated URLs are pointed at loopback (tests/fuzz_hooks.py), the server's worker
is off (it delivers nothing), and its login throttle is lifted, which would otherwise turn the
generated wrong passwords into 429s (the throttle has its own tests).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.factories import PASSWORD, unique_email
from tests.serving import free_port, pg_schema, running_server, server_env

SEED = "20261127"
EXAMPLES = os.environ.get("SMSGATE_TEST_FUZZ_EXAMPLES", "50")
CHECKS = "not_a_server_error,ignored_auth,use_after_free,response_schema_conformance"
MOBILE = "^/api/mobile/"
EVENTS = "/api/mobile/v1/events"
ALL_PHASES = "examples,coverage,fuzzing,stateful"
CONTACT = "+5215555555555"


def _credentials(base: str) -> tuple[str, str, dict[str, list[str]]]:
    """An account's API key, the token of a phone paired to it, and the ids of real objects of
    that account by path parameter (a second device, a webhook, a message, a conversation, an
    opt-out, a spare key, a third-party webhook), so that generated requests reach past the 404
    of an unknown id half of the time."""
    with httpx.Client(base_url=base, timeout=30) as http:
        signup = http.post("/api/auth/signup", json={"email": unique_email(), "password": PASSWORD})
        assert signup.status_code == 201, signup.text
        csrf = {"X-CSRF-Token": signup.json()["csrfToken"]}
        key = http.post("/api/keys", json={"name": "fuzz"}, headers=csrf)
        spare = http.post("/api/keys", json={"name": "spare"}, headers=csrf)
        assert key.status_code == spare.status_code == 201, key.text
        http.cookies.clear()
        http.headers["Authorization"] = f"Bearer {key.json()['key']}"
        device = _created(http, "/api/devices/android", {"name": "fuzz"})
        other = _created(http, "/api/devices/android", {"name": "fuzzed"})
        phone = http.post(
            "/api/mobile/v1/device",
            json={"name": "fuzz/phone"},
            headers={"Authorization": f"Bearer {device['pairing']['token']}"},
        )
        assert phone.status_code == 201, phone.text
        received = http.post(
            "/api/mobile/v1/inbox",
            json={"messages": [{"phoneNumber": CONTACT, "message": "Hola"}]},
            headers={"Authorization": f"Bearer {phone.json()['token']}"},
        )
        assert received.status_code == 202, received.text
        conversations = http.get("/api/conversations").json()["data"]
        webhook = {"url": "http://127.0.0.1:9/hook", "events": ["sms:received"]}
        sent = http.post("/api/v1/send", json={"phoneNumbers": [CONTACT], "message": "Hola"})
        assert sent.status_code == 202, sent.text
        _created(http, "/api/opt-outs", {"phoneNumber": "+5215555555556"})
        hook = {"id": "fuzz-hook", "url": "https://127.0.0.1:9/hook", "event": "sms:received"}
        ids = {
            "device_id": [other["id"]],
            "webhook_id": [_created(http, "/api/webhooks", webhook)["id"]],
            "message_id": [sent.json()["id"]],
            "conversation_id": [conversations[0]["id"]],
            "phone_number": ["+5215555555556"],
            "key_id": [spare.json()["id"]],
            "hook_id": [_created(http, "/api/3rdparty/v1/webhooks", hook)["id"]],
        }
        return key.json()["key"], phone.json()["token"], ids


def _created(http: httpx.Client, path: str, body: Mapping[str, object]) -> dict[str, Any]:
    answer = http.post(path, json=body)
    assert answer.status_code == 201, f"{path}: {answer.text}"
    created: dict[str, Any] = answer.json()
    return created


def _config(cwd: Path, ids: dict[str, list[str]]) -> Path:
    """Schemathesis's configuration: each path parameter takes a real id half of the time."""
    lines = []
    for name, values in ids.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    # the stateful phase follows the document's own links (inferred ones dilute them)
    lines += ["[phases.stateful.inference]", "algorithms = []", ""]
    lines += ["[phases.stateful.generation]", f"max-examples = {int(EXAMPLES) * 5}", ""]
    lines.append("[parameters]")
    lines += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}' for name in ids]
    path = cwd / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _fuzz(
    base: str, token: str, phases: str, where: list[str], config: Path, repo_root: Path
) -> int:
    """One Schemathesis run; returns how many cases it generated."""
    command = [
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(config),
        "run",
        f"{base}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--phases",
        phases,
        "--seed",
        SEED,
        "--max-examples",
        EXAMPLES,
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--no-color",
        *where,
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks",
        "PYTHONPATH": str(repo_root),
    }
    run = subprocess.run(
        command, cwd=config.parent, env=env, capture_output=True, text=True, timeout=900
    )
    summary = run.stdout[-12000:] + run.stderr[-3000:]
    assert run.returncode == 0, f"schemathesis found failures ({' '.join(where)}):\n{summary}"
    generated = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert generated is not None and generated[1] == generated[2], summary
    return int(generated[1])


def test_generated_requests_meet_no_server_error_and_no_ignored_credential(
    settings, tmp_path, repo_root
) -> None:
    port = free_port()
    schema = ""
    if not settings.is_sqlite:  # a schema of its own: the rest of the suite counts rows
        schema = f"fuzz_{secrets.token_hex(6)}"
        pg_schema(settings.database_url, schema, create=True)
    env = {
        **server_env(settings, tmp_path, port),
        "SMSGATE_EMBEDDED_WORKER": "false",
        "SMSGATE_WEBHOOKS_ALLOW_PRIVATE": "true",
        "SMSGATE_WHATSAPP_GRAPH_URL": "http://127.0.0.1:9/v21.0",
        "SMSGATE_LOGIN_MAX_FAILURES": "1000000",
        "SMSGATE_DEFAULT_PLAN": "unlimited",
    }
    if schema:
        env["SMSGATE_DATABASE_SCHEMA"] = schema
    smsgate = Path(sys.executable).parent / "smsgate"
    try:
        with running_server([str(smsgate), "serve"], env, repo_root, port) as base:
            _fuzz_both(base, tmp_path, repo_root)
    finally:
        if schema:
            pg_schema(settings.database_url, schema, create=False)


def _fuzz_both(base: str, tmp_path: Path, repo_root: Path) -> None:
    key, device_token, ids = _credentials(base)
    config = _config(tmp_path, ids)
    # the phone's API first (the account's run may delete its objects); it has no links to
    # follow, and its event stream never ends (tested in tests/mobile/test_live.py)
    phone_only = ["--include-path-regex", MOBILE, "--exclude-path", EVENTS]
    phone = _fuzz(base, device_token, "examples,coverage,fuzzing", phone_only, config, repo_root)
    account = _fuzz(base, key, ALL_PHASES, ["--exclude-path-regex", MOBILE], config, repo_root)
    # every operation was reached many times (10 cases an operation by default)
    assert phone >= 10 * 8 and account >= 10 * 70, (phone, account)
