"""Adapters stay thin (#24): a route module runs no query of its own, commits nothing and
wakes nobody; the domains' functions do. What has not moved yet is listed here, file by file,
as a ceiling: a new `select(`, `.commit(` or `hub.publish` in a route fails, and so does a
ceiling left above what a file still holds (lower it when you move one out)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "smsgate"
ROUTE_MODULES = sorted(
    [
        *PACKAGE.glob("*/routes.py"),
        *(PACKAGE / "dashboard").glob("*.py"),
        *(PACKAGE / "compat").glob("*.py"),
    ],
    key=lambda p: str(p),
)
WHAT = {
    "a query": re.compile(r"\bselect\("),
    "a commit": re.compile(r"\.commit\("),
    "a wake-up": re.compile(r"\bhub\.publish\b"),
}
# still to move into the domains (docs/architecture.md, "Where the code is short")
LEFT: dict[tuple[str, str], int] = {
    # a send path that opens its own transactions: the request's session lets go first
    ("conversations/routes.py", "a commit"): 1,
    ("dashboard/routes.py", "a commit"): 5,
    ("dashboard/campaign_pages.py", "a commit"): 2,
}


def _count(path: Path, pattern: re.Pattern[str]) -> int:
    code = [line.split("#", 1)[0] for line in path.read_text().splitlines()]
    return sum(len(pattern.findall(line)) for line in code)


@pytest.mark.parametrize("path", ROUTE_MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_route_module_leaves_queries_commits_and_wake_ups_to_the_domains(path: Path) -> None:
    name = str(path.relative_to(PACKAGE))
    for what, pattern in WHAT.items():
        found, allowed = _count(path, pattern), LEFT.get((name, what), 0)
        assert found <= allowed, f"{name}: {found} x {what}, at most {allowed}"
        assert found == allowed, f"{name}: {found} x {what}; lower its ceiling to {found}"


def test_the_check_sees_what_it_looks_for(tmp_path: Path) -> None:
    route = tmp_path / "routes.py"
    route.write_text("rows = await session.execute(select(m))\nawait session.commit()\n")
    assert _count(route, WHAT["a query"]) == 1 and _count(route, WHAT["a commit"]) == 1
    route.write_text("# select(m) in a comment is no query\n")
    assert _count(route, WHAT["a query"]) == 0
