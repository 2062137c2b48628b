"""Instructions the server executes for one send and for one trivial JSON request (callgrind).

Requests a second cannot resolve a change of a few per cent on a shared 2-core machine (the same
command moves by a third from run to run); instruction counts can: callgrind counts the same
total for the same code and inputs whatever else the machine is doing. This runs the app (plus
the benchmarks' `POST /bench/echo`, echo_app.py) in-process under `valgrind --tool=callgrind`,
calls it as an ASGI server would (no sockets, no HTTP parsing: that part is the same for every
request), 32 requests at a time, and counts only the measured requests (callgrind_control zeroes
the counters after a warm-up and dumps them after each phase).

The send's writer is a stand-in that answers at once with the rows the send prepared, so the
figure is the event loop's own work for a send (auth, validation, numbers, rows, checks, the
answer, the middleware), not the writer process's or any waiting. Each send goes to a number
not seen before, as about half the sends of `send_throughput.py` do. The embedded worker is off
and the credential cache kept for the run: they run on the clock, which valgrind slows 50-fold.

    .venv/bin/python bench/send_instructions.py [--requests 1024]    (needs valgrind; ~2 min)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
BATCH = 32
WARM_UP = 320
PHASES = ("trivial_json", "send")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1024, help="measured requests a phase")
    parser.add_argument("--inner", help=argparse.SUPPRESS)  # the run under valgrind
    args, _ = parser.parse_known_args()  # make bench passes every benchmark its --database
    if args.inner:
        _inner(Path(args.inner), args.requests)
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("needs valgrind (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--inner",
                tmp,
                "--requests",
                str(args.requests),
            ],
            check=True,
            capture_output=True,
        )
        figures: dict[str, Any] = {}
        for number, phase in enumerate(PHASES, start=1):
            summary = next(
                line
                for line in Path(f"{out}.{number}").read_text().splitlines()
                if line.startswith("summary:")
            )
            figures[phase] = {"instructions_per_request": int(summary.split()[1]) // args.requests}
    ceiling = figures["trivial_json"]["instructions_per_request"]
    figures["send_to_trivial_json_instructions"] = round(
        figures["send"]["instructions_per_request"] / ceiling, 3
    )
    print(json.dumps({"benchmark": "send_instructions", "requests": args.requests, **figures}))


def _inner(tmp: Path, requests: int) -> None:
    os.environ |= {
        "SMSGATE_DATA_DIR": str(tmp),
        "SMSGATE_LOG_LEVEL": "warning",
        "SMSGATE_DEFAULT_PLAN": "unlimited",
        "SMSGATE_EMBEDDED_WORKER": "false",
    }
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "smsgate"), "migrate"], check=True, capture_output=True)
    import uvloop

    uvloop.run(_measure(requests))


async def _measure(requests: int) -> None:
    import httpx

    sys.path.insert(0, str(BENCH_DIR))
    from echo_app import create_bench_app
    from send_throughput import _send_body

    from smsgate.accounts.cache import credentials
    from smsgate.messages.sending.prepare import PreparedMessage
    from smsgate.messages.sending.writer import Stored

    app = create_bench_app()
    credentials.ttl = 24 * 3600.0
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            signup = await http.post(
                "/api/auth/signup",
                json={"email": "bench@example.com", "password": "correct horse battery"},
            )
            made = await http.post(
                "/api/keys",
                json={"name": "bench"},
                headers={"X-CSRF-Token": signup.json()["csrfToken"]},
            )
            key = made.json()["key"]

        async def store(prepared: PreparedMessage) -> Stored:
            return Stored(True, prepared.message, prepared.recipients)

        app.state.send_writer.store = store
        sent = 0
        for phase in PHASES:
            path, headers = (
                ("/bench/echo", {})
                if phase == "trivial_json"
                else ("/api/v1/send", {"authorization": f"Bearer {key}"})
            )
            for count in (WARM_UP, requests):
                if count == requests:
                    _callgrind("-z")
                for _ in range(0, count, BATCH):
                    answers = await asyncio.gather(
                        *(_call(app, path, headers, _send_body(sent + i)) for i in range(BATCH))
                    )
                    sent += BATCH
                    assert all(status in (200, 202) for status in answers), answers
            _callgrind("-d")


def _callgrind(flag: str) -> None:
    subprocess.run(["callgrind_control", flag, str(os.getpid())], check=True, capture_output=True)


async def _call(app: Any, path: str, headers: dict[str, str], body: object) -> int:
    data = json.dumps(body).encode()
    raw = [(name.encode(), value.encode()) for name, value in headers.items()]
    raw += [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": data, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


if __name__ == "__main__":
    main()
