"""The third-party API's health check, in the shape its clients read (RFC health+json)."""

from __future__ import annotations

from fastapi import Request

from smsgate import __version__
from smsgate.compat.caller import PREFIX
from smsgate.kit import clock
from smsgate.kit.responses import JSONResponse, api_router
from smsgate.ops.health import database_state

router = api_router(prefix=PREFIX, tags=["compat"])


async def _health(request: Request) -> JSONResponse:
    started = clock.now()
    ok = (await database_state(request.app.state.db)).reachable  # bounded: never hangs
    took = int((clock.now() - started).total_seconds() * 1000)
    body = {
        "status": "pass" if ok else "fail",
        "version": __version__,
        "releaseId": 1,
        "checks": {
            "db:ping": {
                "status": "pass" if ok else "fail",
                "observedValue": took,
                "observedUnit": "ms",
                "description": "database round trip",
            }
        },
    }
    return JSONResponse(body, status_code=200 if ok else 503)


for _path in ("/health", "/health/live", "/health/ready", "/health/startup"):
    router.add_api_route(_path, _health, methods=["GET"], include_in_schema=_path == "/health")
