"""The `smsgate` command an operator uses: migrate, accounts, keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from smsgate.config import Settings
from tests.factories import PASSWORD, unique_email


def _smsgate(
    settings: Settings, *args: str, lang: str = "C.UTF-8"
) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_MESSAGES")},
        "LANG": lang,  # the CLI speaks the terminal's language
        "SMSGATE_DATA_DIR": str(settings.data_dir),
        "SMSGATE_DATABASE_URL": settings.database_url,
        "SMSGATE_DATABASE_SCHEMA": settings.database_schema,
        "SMSGATE_SECRET_KEY": settings.secret_key,
    }
    command = [str(Path(sys.executable).parent / "smsgate"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


async def test_operator_creates_an_account_and_a_key_that_works(settings, client) -> None:
    assert _smsgate(settings, "migrate").returncode == 0
    email = unique_email("cli")
    created = _smsgate(settings, "accounts", "create", "--email", email, "--password", PASSWORD)
    assert created.returncode == 0, created.stderr
    account_id = created.stdout.strip()

    listed = _smsgate(settings, "accounts", "list")
    assert listed.returncode == 0
    line = next(line for line in listed.stdout.splitlines() if email in line)
    assert line.split()[0] == account_id and " unlimited " in line

    assert _smsgate(settings, "accounts", "set-plan", email, "pro").returncode == 0
    assert f"{email}  pro" in _smsgate(settings, "accounts", "list").stdout

    key = _smsgate(settings, "keys", "create", "--account", email, "--name", "ops")
    assert key.returncode == 0, key.stderr
    raw = key.stdout.strip()
    assert raw.startswith("sk_")
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {raw}"})
    assert me.status_code == 200 and me.json()["id"] == account_id and me.json()["plan"] == "pro"

    limited = _smsgate(
        settings, "keys", "create", "--account", account_id, "--scope", "messages:read"
    )
    reader = {"Authorization": f"Bearer {limited.stdout.strip()}"}
    assert (await client.get("/api/auth/me", headers=reader)).json()["scopes"] == ["messages:read"]


def test_cli_errors_are_clean_sentences(settings) -> None:
    unknown_plan = _smsgate(settings, "accounts", "set-plan", "nobody@example.com", "gold")
    assert (
        unknown_plan.returncode == 1
        and "no plan gold; the plans are free, pro" in unknown_plan.stderr
    )
    missing = _smsgate(settings, "keys", "create", "--account", "nobody@example.com")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no account nobody@example.com"
    weak = _smsgate(settings, "accounts", "create", "--email", unique_email(), "--password", "x")
    assert weak.returncode == 1
    assert "password: must be at least 10 characters long" in weak.stderr
    assert "Traceback" not in weak.stderr
    scope = _smsgate(settings, "keys", "create", "--account", "a@b.c", "--scope", "root")
    assert scope.returncode == 1 and "Traceback" not in scope.stderr


def test_a_new_embedded_database_is_private(tmp_path) -> None:
    """The SQLite file holds every message and number: readable by its owner only."""
    import stat

    from smsgate.config import Settings
    from smsgate.storage import migrate

    data = tmp_path / "fresh" / "data"
    settings = Settings(data_dir=data, database_url="", secret_key="").resolved()
    migrate.upgrade(settings)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = [data / "smsgate.db", data / "secret_key", *data.glob("smsgate.db-*")]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_cli_errors_speak_the_terminal_s_language(settings) -> None:
    missing = _smsgate(
        settings, "keys", "create", "--account", "nadie@example.com", lang="es_MX.UTF-8"
    )
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no existe la cuenta nadie@example.com"
    weak = _smsgate(
        settings,
        "accounts",
        "create",
        "--email",
        unique_email(),
        "--password",
        "x",
        lang="es_MX.UTF-8",
    )
    assert "password: debe tener al menos 10 caracteres" in weak.stderr


async def test_an_operator_resets_a_forgotten_password(settings, client) -> None:
    """The owner forgot the password: the operator sets a new one from the command line; the
    old one and every session and token stop working, the new one logs in."""
    email = unique_email("reset")
    created = _smsgate(settings, "accounts", "create", "--email", email, "--password", PASSWORD)
    assert created.returncode == 0, created.stderr
    login = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    token = await client.post(
        "/api/auth/token",
        json={"scopes": ["messages:read"]},
        headers={"X-CSRF-Token": login.json()["csrfToken"]},
    )
    assert token.status_code == 201, token.text
    access = token.json()["accessToken"]
    new = "otra-clave-segura-2026"
    reset = _smsgate(settings, "accounts", "reset-password", email, "--password", new)
    assert reset.returncode == 0, reset.stderr
    assert "password changed" in reset.stdout
    client.cookies.clear()
    old = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert old.status_code == 401
    fresh = await client.post("/api/auth/login", json={"email": email, "password": new})
    assert fresh.status_code == 200, fresh.text
    revoked = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {access}"})
    assert revoked.status_code == 401
    weak = _smsgate(settings, "accounts", "reset-password", email, "--password", "x")
    assert weak.returncode == 1 and "password: must be at least" in weak.stderr
