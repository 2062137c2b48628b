"""A minimal keep-alive HTTP/1.1 load generator (so the client is not the bottleneck)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, float | int | dict[int, int]]:
        lat = sorted(self.latencies_ms)

        def pct(p: float) -> float:
            return round(lat[min(len(lat) - 1, int(len(lat) * p))], 2) if lat else 0.0

        return {
            "requests": self.requests,
            "errors": self.errors,
            "statuses": self.statuses,
            "rps": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "mean_ms": round(statistics.fmean(lat), 2) if lat else 0.0,
        }


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def run_load(
    host: str,
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body_for: Callable[[int], dict[str, object] | None],
    *,
    concurrency: int,
    duration: float,
    expect: tuple[int, ...] = (200, 202),
) -> LoadResult:
    """Run `concurrency` connections for `duration` seconds, each sending request after request."""
    result = LoadResult()
    deadline = time.perf_counter() + duration
    counter = 0

    async def worker() -> None:
        nonlocal counter
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                counter += 1
                payload = body_for(counter)
                data = json.dumps(payload).encode() if payload is not None else b""
                lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
                lines += [f"{k}: {v}" for k, v in headers.items()]
                if payload is not None:
                    lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
                request = ("\r\n".join(lines) + "\r\n\r\n").encode() + data
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
                result.requests += 1
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status not in expect:
                    result.errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result
