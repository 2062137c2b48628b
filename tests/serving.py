"""Start the real server as a separate process, the way the README says, and stop it cleanly."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pg_schema(url: str, schema: str, create: bool) -> None:
    """Create (or drop, with everything in it) a PostgreSQL schema."""

    async def run() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            if create:
                await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            else:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()

    asyncio.run(run())


@asynccontextmanager
async def own_database(settings: Any, folder: Path) -> AsyncIterator[Any]:
    """The suite's settings on a database of their own, not migrated: a file in `folder`, or,
    when the suite runs on PostgreSQL, a fresh schema, dropped after."""
    if not os.environ.get("SMSGATE_TEST_DATABASE_URL"):
        yield settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{folder}/own.db"})
        return
    url = os.environ["SMSGATE_TEST_DATABASE_URL"]
    schema = f"test_{secrets.token_hex(6)}"
    await asyncio.to_thread(pg_schema, url, schema, True)
    try:
        yield settings.model_copy(update={"database_url": url, "database_schema": schema})
    finally:
        await asyncio.to_thread(pg_schema, url, schema, False)


def server_env(settings: Any, data_dir: Path, port: int) -> dict[str, str]:
    """Environment for `smsgate serve` on `port`, on the suite's database (its own PostgreSQL
    schema, or an SQLite file in `data_dir`)."""
    env = {
        "SMSGATE_DATA_DIR": str(data_dir),
        "SMSGATE_PORT": str(port),
        "SMSGATE_HOST": "127.0.0.1",
    }
    if not settings.is_sqlite:
        env["SMSGATE_DATABASE_URL"] = settings.database_url
        env["SMSGATE_DATABASE_SCHEMA"] = settings.database_schema
    return env


@contextmanager
def running_server(
    command: list[str],
    env: dict[str, str],
    cwd: Path,
    port: int,
    timeout: float = 120.0,
    scheme: str = "http",
    verify: ssl.SSLContext | bool = True,
) -> Iterator[str]:
    """Run `command` until /health answers 200 on `port`; yield the base URL; then stop it."""
    base = f"{scheme}://127.0.0.1:{port}"
    log_path = Path(env.get("SMSGATE_DATA_DIR", ".")) / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"server exited: {log_path.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{base}/health", timeout=2, verify=verify).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"no /health in {timeout}s: {log_path.read_text()[-3000:]}"
                    )
                time.sleep(0.2)
            yield base
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@asynccontextmanager
async def serving_asgi(
    app: Any, port: int | None = None, tls: Path | None = None
) -> AsyncIterator[int]:
    """Serve a small ASGI app (a receiver, a fake API) on loopback in this event loop; yields
    its port. With `tls`, a folder holding cert.pem and key.pem, over HTTPS."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            ssl_certfile=str(tls / "cert.pem") if tls else None,
            ssl_keyfile=str(tls / "key.pem") if tls else None,
        )
    )
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def read_body(receive: Any) -> bytes:
    """The whole request body of an ASGI request."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def loopback_certificate(folder: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 in `folder` (cert.pem, key.pem): the receivers of
    APIs that take only https:// URLs serve it, and the client that calls them trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return folder
