"""Run every benchmark in bench/, print their JSON, and keep it in bench/results/latest.json."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
BENCHMARKS = [
    "send_throughput.py",
    "send_instructions.py",
    "dispatch_latency.py",
    "webhook_throughput.py",
    "phone_throughput.py",
    "lock_wait.py",
    "campaign.py",
    "scale.py",  # the longest: two fills of a million messages, ~20 minutes
]


def main() -> None:
    results = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "benchmarks": {}}
    for name in BENCHMARKS:
        done = subprocess.run(
            [sys.executable, str(BENCH_DIR / name), *sys.argv[1:]],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            results["benchmarks"][name] = {"failed": done.stderr[-2000:]}
        else:
            results["benchmarks"][name] = json.loads(done.stdout)
    out = BENCH_DIR / "results" / "latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
