"""What every benchmark needs: a real server process per database, and an account with a key."""

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pg_reachable() -> bool:
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


@dataclass
class Server:
    base: str
    port: int
    pid: int
    key: str
    env: dict[str, str] = field(default_factory=dict)  # the server's SMSGATE_* settings

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server process and every process it
        started (the send writer, the fork server), read from /proc."""
        return sum(self.cpu_by_process().values())

    def cpu_by_process(self) -> dict[int, float]:
        """CPU seconds so far of the server process and of each process it started, by pid."""
        tick = os.sysconf("SC_CLK_TCK")
        used: dict[int, float] = {}
        for pid in _tree(self.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue  # ended meanwhile
            used[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        return used

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


METRICS_TOKEN = secrets.token_hex(16)
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@contextmanager
def server(
    database: str, pg_url: str, env: dict[str, str] | None = None, workers: int = 1
) -> Iterator[Server]:
    """`smsgate migrate`, then uvicorn serving the app plus the echo endpoint (echo_app.py),
    on a fresh SQLite file or a fresh PostgreSQL schema; signs up and makes an API key."""
    bin_dir = Path(sys.executable).parent
    port = free_port()
    schema = f"bench_{secrets.token_hex(4)}" if database == "postgresql" else ""
    with tempfile.TemporaryDirectory() as tmp:
        full = {
            **os.environ,
            **(env or {}),
            "SMSGATE_DATA_DIR": tmp,
            "SMSGATE_PORT": str(port),
            "SMSGATE_LOG_LEVEL": "warning",
            "SMSGATE_DEFAULT_PLAN": "unlimited",  # measure the path, not the plan's limits
            "SMSGATE_METRICS_TOKEN": METRICS_TOKEN,  # the benchmarks read the server's counters
        }
        if schema:
            _pg_schema(pg_url, schema, create=True)
            full |= {"SMSGATE_DATABASE_URL": pg_url, "SMSGATE_DATABASE_SCHEMA": schema}
        log = Path(tmp) / "server.log"
        proc: subprocess.Popen[bytes] | None = None
        try:
            migrate = [str(bin_dir / "smsgate"), "migrate"]
            subprocess.run(migrate, env=full, check=True, capture_output=True)
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
                    str(BENCH_DIR),
                    "--timeout-graceful-shutdown",
                    "2",
                    "--workers",
                    str(workers),
                ],
                env=full,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(base, proc, log)
            settings = {k: v for k, v in full.items() if k.startswith("SMSGATE_")}
            yield Server(base, port, proc.pid, _credentials(base), settings)
        finally:
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
            if schema:
                _pg_schema(pg_url, schema, create=False)


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"server did not start: {log.read_text()[-2000:]}")


def _credentials(base: str) -> str:
    with httpx.Client(base_url=base, timeout=30) as http:
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


def databases(choice: str, pg_url: str, run: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Run on SQLite and/or PostgreSQL; PostgreSQL is skipped when it does not answer."""
    results: dict[str, Any] = {}
    if choice in ("sqlite", "both"):
        results["sqlite"] = run("sqlite")
    if choice in ("postgresql", "both"):
        if pg_reachable():
            results["postgresql"] = run("postgresql")
        else:
            results["postgresql"] = {"skipped": "PostgreSQL not reachable on 127.0.0.1:5432"}
    return results


def database_arguments(parser: argparse.ArgumentParser) -> None:
    """--database and --pg-url, as every benchmark takes them."""
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-url", default=os.environ.get("SMSGATE_TEST_DATABASE_URL", DEFAULT_PG))


def publish(
    benchmark: str, args: argparse.Namespace, run: Callable[[str], dict[str, Any]], **fields: Any
) -> None:
    """Run on the databases asked for and print the benchmark's one JSON document."""
    out = {
        "benchmark": benchmark,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **fields,
        "results": databases(args.database, args.pg_url, run),
    }
    print(json.dumps(out, indent=2))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))], 2)
