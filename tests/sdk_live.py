"""Run the official Python SDK's own live tests (`TestAPIClient` in its `tests/test_client.py`)
against a real SMSGate server, as its authors run them against theirs.

    .venv/bin/python tests/sdk_live.py        (make sdk-test; CI runs it)

Downloads the SDK's source distribution (the tests are not in the wheel), starts
`smsgate serve` on a free port with a fresh SQLite database, creates an account with the CLI,
and runs the tests with API_BASE_URL, API_LOGIN and API_PASSWORD set. Exits non-zero unless
every test of the class ran and passed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.serving import free_port, running_server

SDK = "android-sms-gateway==4.3.3"
EXPECTED = 4  # the tests of TestAPIClient in 4.3.3


def main() -> int:
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                str(work),
                SDK,
            ],
            check=True,
        )
        archive = next(work.glob("*.tar.gz"))
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if "/tests/" in m.name]
            tar.extractall(work, members=members, filter="data")
        tests = next(work.glob("*/tests/test_client.py"))
        data = work / "data"
        port = free_port()
        env = {"SMSGATE_DATA_DIR": str(data), "SMSGATE_PORT": str(port)}
        email, password = "sdk-live@example.com", "sdk live pass phrase"
        subprocess.run(
            [str(bin_dir / "smsgate"), "migrate"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                str(bin_dir / "smsgate"),
                "accounts",
                "create",
                "--email",
                email,
                "--password",
                password,
            ],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        with running_server([str(bin_dir / "smsgate"), "serve"], env, Path.cwd(), port) as base:
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-p",
                    "no:cacheprovider",
                    "-q",
                    "-rA",
                    f"{tests}::TestAPIClient",
                    "--rootdir",
                    str(tests.parent),
                ],
                env={
                    **os.environ,
                    "API_BASE_URL": f"{base}/api/3rdparty/v1",
                    "API_LOGIN": email,
                    "API_PASSWORD": password,
                },
                capture_output=True,
                text=True,
            )
    print(result.stdout[-4000:])
    print(result.stderr[-2000:], file=sys.stderr)
    if result.returncode != 0 or f"{EXPECTED} passed" not in result.stdout:
        print(f"SDK live tests: expected {EXPECTED} passed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
