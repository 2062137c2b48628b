"""Throughput and latency of POST /api/v1/send against trivial endpoints on the same server.

Starts a real uvicorn (one process) serving the SMSGate app plus `POST /bench/echo` (a small JSON
body parsed into a pydantic model and answered back: the framework's floor for a JSON request),
per database; signs up over HTTP; then drives each endpoint at a fixed concurrency for a fixed
time: `GET /health/live` (no body), `POST /bench/echo`, and `POST /api/v1/send` (one recipient).
Prints one JSON document. Target: the send path at no less than half of the trivial JSON
endpoint's throughput.

    .venv/bin/python bench/send_throughput.py [--duration 10] [--concurrency 32]
        [--database sqlite|postgresql|both] [--pg-url postgresql+asyncpg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import run_load

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_reachable(url: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def _pg_schema(url: str, schema: str, create: bool) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            verb = f'CREATE SCHEMA "{schema}"' if create else f'DROP SCHEMA "{schema}" CASCADE'
            await conn.execute(text(verb))
        await engine.dispose()

    asyncio.run(run())


def _start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """`smsgate migrate`, then uvicorn serving the app plus the echo endpoint (echo_app.py)."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, **env, "SMSGATE_PORT": str(port), "SMSGATE_LOG_LEVEL": "warning"}
    subprocess.run([str(bin_dir / "smsgate"), "migrate"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen(
        [
            str(bin_dir / "uvicorn"),
            "echo_app:create_bench_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--app-dir",
            str(Path(__file__).resolve().parent),
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit(f"server did not start: {log.read_text()[-2000:]}")


def _credentials(port: int) -> str:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        signup = http.post(
            "/api/auth/signup",
            json={
                "email": f"bench-{secrets.token_hex(4)}@example.com",
                "password": "bench pass phrase",
            },
        )
        signup.raise_for_status()
        key = http.post(
            "/api/keys",
            json={"name": "bench"},
            headers={"X-CSRF-Token": signup.json()["csrfToken"]},
        )
        key.raise_for_status()
        return str(key.json()["key"])


def bench_database(name: str, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"SMSGATE_DATA_DIR": tmp, **env}
        proc = _start_server(env, port, Path(tmp) / "server.log")
        try:
            key = _credentials(port)
            auth = {"Authorization": f"Bearer {key}"}

            def send_body(i: int) -> dict[str, object]:
                return {"phoneNumbers": ["+5215555555555"], "message": f"Hola mundo {i}"}

            async def measure() -> dict[str, Any]:
                out: dict[str, Any] = {}
                for name, method, path, headers, body in (
                    ("trivial_get", "GET", "/health/live", {}, lambda _: None),
                    ("trivial_json", "POST", "/bench/echo", {}, send_body),
                    ("send", "POST", "/api/v1/send", auth, send_body),
                ):
                    for duration in (1.0, args.duration):  # warm-up, then the measured run
                        result = await run_load(
                            "127.0.0.1",
                            port,
                            method,
                            path,
                            headers,
                            body,
                            concurrency=args.concurrency,
                            duration=duration,
                        )
                    out[name] = result.summary()
                return out

            figures = asyncio.run(measure())
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    send_rps = float(figures["send"]["rps"])
    for ceiling in ("trivial_json", "trivial_get"):
        rps = float(figures[ceiling]["rps"])
        figures[f"send_to_{ceiling}_ratio"] = round(send_rps / rps, 3) if rps else None
    figures["target"] = "send_to_trivial_json_ratio >= 0.5"
    figures["meets_target"] = (figures["send_to_trivial_json_ratio"] or 0) >= 0.5
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-url", default=os.environ.get("SMSGATE_TEST_DATABASE_URL", DEFAULT_PG))
    args = parser.parse_args()

    out: dict[str, Any] = {
        "benchmark": "send_throughput",
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": {},
    }
    if args.database in ("sqlite", "both"):
        out["results"]["sqlite"] = bench_database("sqlite", {}, args)
    if args.database in ("postgresql", "both"):
        if not _pg_reachable(args.pg_url):
            out["results"]["postgresql"] = {"skipped": "PostgreSQL not reachable on 127.0.0.1:5432"}
        else:
            schema = f"bench_{secrets.token_hex(4)}"
            _pg_schema(args.pg_url, schema, create=True)
            try:
                env = {"SMSGATE_DATABASE_URL": args.pg_url, "SMSGATE_DATABASE_SCHEMA": schema}
                out["results"]["postgresql"] = bench_database("postgresql", env, args)
            finally:
                _pg_schema(args.pg_url, schema, create=False)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
