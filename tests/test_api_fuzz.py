"""The whole HTTP API fuzzed against the real server (reliability checklist 34).

Schemathesis reads the server's own /openapi.json and sends what it generates from it: the
schema's examples, requests at and past every documented boundary, random valid and invalid
requests, and stateful sequences that follow the document's links (create a webhook, then read,
change, delete it and read it again). The run fails on any 5xx (`not_a_server_error`), on an
operation that declares a credential yet answers without one or with a wrong one
(`ignored_auth`), and on a resource still served after its DELETE succeeded
(`use_after_free`). It runs twice: with an account's API key over the account API and the
third-party API, and with a registered phone's token over the mobile API.

The seed is fixed, so a run is repeatable (the ids the server hands out differ, so stateful
sequences may too); SMSGATE_TEST_FUZZ_EXAMPLES raises the number of cases per operation for a
longer hunt. Generated URLs are pointed at loopback (tests/fuzz_hooks.py), the server's worker
is off (it delivers nothing), and its login throttle is lifted, which would otherwise turn the
generated wrong passwords into 429s (the throttle has its own tests).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx

from tests.factories import PASSWORD, unique_email
from tests.serving import free_port, pg_schema, running_server, server_env

SEED = "20261127"
EXAMPLES = os.environ.get("SMSGATE_TEST_FUZZ_EXAMPLES", "10")
CHECKS = "not_a_server_error,ignored_auth,use_after_free"
MOBILE = "^/api/mobile/"
EVENTS = "/api/mobile/v1/events"
ALL_PHASES = "examples,coverage,fuzzing,stateful"


def _credentials(base: str) -> tuple[str, str]:
    """An account's API key, and the token of a phone paired to it."""
    with httpx.Client(base_url=base, timeout=30) as http:
        signup = http.post("/api/auth/signup", json={"email": unique_email(), "password": PASSWORD})
        assert signup.status_code == 201, signup.text
        csrf = {"X-CSRF-Token": signup.json()["csrfToken"]}
        key = http.post("/api/keys", json={"name": "fuzz"}, headers=csrf)
        assert key.status_code == 201, key.text
        auth = {"Authorization": f"Bearer {key.json()['key']}"}
        device = http.post("/api/devices/android", json={"name": "fuzz"}, headers=auth)
        assert device.status_code == 201, device.text
        pairing = device.json()["pairing"]["token"]
        http.cookies.clear()
        phone = http.post(
            "/api/mobile/v1/device",
            json={"name": "fuzz/phone"},
            headers={"Authorization": f"Bearer {pairing}"},
        )
        assert phone.status_code == 201, phone.text
        return key.json()["key"], phone.json()["token"]


def _fuzz(base: str, token: str, phases: str, where: list[str], cwd: Path, repo_root: Path) -> None:
    command = [
        str(Path(sys.executable).parent / "st"),
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
    run = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    summary = run.stdout[-12000:] + run.stderr[-3000:]
    assert run.returncode == 0, f"schemathesis found failures ({' '.join(where)}):\n{summary}"
    # the run really tested something: every selected operation, and thousands of cases
    assert "generated" in run.stdout and " passed" in run.stdout, summary


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
    key, device_token = _credentials(base)
    _fuzz(base, key, ALL_PHASES, ["--exclude-path-regex", MOBILE], tmp_path, repo_root)
    # the phone's API has no links to follow; its event stream never ends (it has tests
    # of its own in tests/mobile/test_live.py)
    phone_only = ["--include-path-regex", MOBILE, "--exclude-path", EVENTS]
    _fuzz(base, device_token, "examples,coverage,fuzzing", phone_only, tmp_path, repo_root)
