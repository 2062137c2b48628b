"""Adapters stay thin (#24): a route module (any module that declares a router) and every
module of the adapter packages runs no query of its own, commits nothing and wakes nobody; the
domains' functions do (a wake-up through notify.hub.wake_after_commit, a transaction of its own
through Database.transaction). LEFT is the ratchet for what has not moved yet: a ceiling per
file that must equal what the file holds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "smsgate"
ADAPTERS = ("mobile", "compat", "dashboard", "ops")
# every module of the adapters, and every module that declares a router, wherever it is
ROUTE_MODULES = sorted(
    path
    for path in PACKAGE.rglob("*.py")
    if path.relative_to(PACKAGE).as_posix() not in ("app.py", "kit/responses.py")
    and (
        path.relative_to(PACKAGE).parts[0] in ADAPTERS
        or re.search(r"\b(api_router|APIRouter)\(", path.read_text())
    )
)
WHAT = {
    "a query": re.compile(r"\bselect\(|\bsession\.(execute|get|scalar|scalars)\("),
    "a write": re.compile(r"\bsession\.(add|add_all|delete)\("),
    "a commit": re.compile(r"\bcommit\("),  # session.commit( and storage.db.commit(
    "a wake-up": re.compile(r"\bhub\.publish\b"),
}
# still to move into the domains (docs/architecture.md, "Where the code is short"): nothing
LEFT: dict[tuple[str, str], int] = {}


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


def test_every_router_is_checked() -> None:
    names = {path.relative_to(PACKAGE).as_posix() for path in ROUTE_MODULES}
    assert {
        "compat/messages.py",
        "ops/metrics.py",
        "dashboard/frame.py",
        "whatsapp/routes.py",
    } <= names


def test_the_check_sees_what_it_looks_for(tmp_path: Path) -> None:
    route = tmp_path / "routes.py"
    route.write_text("rows = await session.execute(select(m))\nawait session.commit()\n")
    assert _count(route, WHAT["a query"]) == 2 and _count(route, WHAT["a commit"]) == 1
    route.write_text("await commit(session)\nafter_commit(session, wake)\n")
    assert _count(route, WHAT["a commit"]) == 1
    route.write_text("device = await session.get(Device, x)\nawait session.delete(device)\n")
    assert _count(route, WHAT["a query"]) == 1 and _count(route, WHAT["a write"]) == 1
    route.write_text("# select(m) in a comment is no query\n")
    assert _count(route, WHAT["a query"]) == 0
