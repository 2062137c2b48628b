"""The app's routes turn away paths without their literal prefix before the full match
(app._quick_miss): every route decides every route's paths exactly as before."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from starlette.routing import Match


def _sample(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "c0123456789abcdefghijklmn", path)


def _scope(path: str, method: str, root_path: str = "") -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": root_path + path,
        "root_path": root_path,
        "headers": [],
        "query_string": b"",
    }


async def test_every_route_matches_as_its_full_match_does(app: FastAPI) -> None:
    routes: list[Any] = [r for r in app.router.routes if isinstance(getattr(r, "path", None), str)]
    paths = {_sample(r.path) for r in routes} | {"/", "/nowhere", "/api", "/api/v1/sendx"}
    checked = matched = 0
    for path in sorted(paths):
        for method in ("GET", "POST"):
            for root_path in ("", "/behind/proxy"):
                scope = _scope(path, method, root_path)
                for route in routes:
                    quick = route.matches(dict(scope))
                    full = type(route).matches(route, dict(scope))
                    assert quick == full, (route.path, path, method, root_path)
                    checked += 1
                    matched += quick[0] is not Match.NONE
    assert matched >= len(routes)  # each route's own path matched it (the check is not idle)
    assert checked > 10_000


async def test_a_late_route_is_still_reached(client) -> None:
    """The third-party API's routes come late in the table: an unauthenticated call reaches
    them and is refused by them, not by a 404."""
    answer = await client.post("/api/3rdparty/v1/messages", json={})
    assert answer.status_code == 401
    assert (await client.get("/api/3rdparty/v1/nowhere")).status_code == 404


def test_every_route_answers_with_the_apps_json_response(app) -> None:
    """Routes are added to the app directly (app._add_routes), so the app's default response
    class never reached them: 143 answered through the standard library's encoder without the
    headers the app's own JSONResponse adds (Cache-Control: no-store). Each router now has it."""
    from fastapi.routing import APIRoute

    from smsgate.kit.responses import JSONResponse

    for route in app.routes:
        if isinstance(route, APIRoute):
            kind = getattr(route.response_class, "value", route.response_class)
            assert kind is JSONResponse or not issubclass(kind, JSONResponse.__bases__[0]), (  # type: ignore[arg-type]
                route.path
            )
