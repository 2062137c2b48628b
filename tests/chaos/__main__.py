"""`make chaos`: the chaos scenarios at a bigger size, on SQLite and PostgreSQL, as JSON.

python -m tests.chaos [--database sqlite|postgresql|both] [--pg-url URL] [--scale N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from tests.chaos import harness
from tests.chaos.test_chaos import SHORT_RETRIES

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def scenarios(folder: Path, pg_url: str, scale: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    async with harness.server(folder / "sends", pg_url) as running:
        figures["sends_through_crashes"] = await harness.sends_through_crashes(
            running, sends=500 * scale, kills=3 * scale
        )
    async with harness.server(folder / "phones", pg_url) as running:
        figures["phones_through_crashes"] = await harness.phones_through_crashes(
            running, phones=5 * scale, messages=300 * scale, kills=3 * scale
        )
    async with harness.server(folder / "outage", pg_url, SHORT_RETRIES) as running:
        figures["receiver_outage"] = await harness.receiver_outage(
            running, events=150 * scale, outage_seconds=30
        )
    if pg_url:
        async with harness.server(folder / "terminate", pg_url) as running:
            figures["connections_terminated"] = await harness.connections_terminated(
                running, pg_url, seconds=30 * scale
            )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--scale", type=int, default=1)
    args = parser.parse_args()
    chosen = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    report: dict[str, Any] = {}
    for database in chosen:
        with tempfile.TemporaryDirectory(prefix="smsgate-chaos-") as folder:
            pg_url = args.pg_url if database == "postgresql" else ""
            report[database] = asyncio.run(scenarios(Path(folder), pg_url, args.scale))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
