"""Liveness and readiness endpoints for people, load balancers and orchestrators."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from smsgate import __version__
from smsgate.kit.responses import JSONResponse
from smsgate.storage.db import Database
from smsgate.storage.migrate import current_revision

router = APIRouter()
PING_TIMEOUT_SECONDS = 3.0


async def _database_state(request: Request) -> tuple[bool, str | None]:
    database: Database = request.app.state.db
    try:
        async with asyncio.timeout(PING_TIMEOUT_SECONDS):
            # reads without SQLite's write lock: a probe must neither wait behind a busy
            # writer (and call the database unreachable) nor hold one up
            async with database.read_engine.connect() as conn:
                revision = await conn.run_sync(current_revision)
        return True, revision
    except Exception:  # any failure to reach the database means "not ready", never a 500
        return False, None


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    reachable, revision = await _database_state(request)
    body: dict[str, Any] = {
        "status": "ok" if reachable else "unavailable",
        "version": __version__,
        "database": {
            "reachable": reachable,
            "dialect": request.app.state.db.dialect,
            "revision": revision,
        },
    }
    headers = {} if reachable else {"Retry-After": "5"}
    return JSONResponse(body, status_code=200 if reachable else 503, headers=headers)


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    reachable, revision = await _database_state(request)
    head = request.app.state.schema_head
    if not reachable:
        body = {"status": "unavailable", "reason": "the database is unreachable"}
    elif revision != head:
        body = {
            "status": "unavailable",
            "reason": f"the database schema is at {revision}, this server needs {head}; "
            "run smsgate migrate",
        }
    else:
        return JSONResponse({"status": "ok"})
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
