"""Liveness and readiness endpoints for people, load balancers and orchestrators."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from smsgate import __version__
from smsgate.kit.responses import JSONResponse, api_router
from smsgate.storage.db import Database
from smsgate.storage.migrate import current_revision

router = api_router()
PING_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class _DatabaseState:
    reachable: bool
    revision: str | None = None
    error: str | None = None  # why it was not reached: a timeout tells "busy" from "down"


async def database_state(database: Database) -> _DatabaseState:
    """The database probe every health answer uses (ours and the third-party API's)."""
    try:
        async with asyncio.timeout(PING_TIMEOUT_SECONDS):
            # reads without SQLite's write lock: a probe must neither wait behind a busy
            # writer (and call the database unreachable) nor hold one up
            async with database.read_engine.connect() as conn:
                revision = await conn.run_sync(current_revision)
        return _DatabaseState(True, revision)
    except TimeoutError:
        # every connection of the pool busy, or a server that accepts but does not answer
        error = f"no answer within {PING_TIMEOUT_SECONDS:g} s: busy, or not answering"
        return _DatabaseState(False, error=error)
    except Exception as exc:  # any failure to reach the database means "not ready", never a 500
        # the error's kind, not its text (which may name hosts and users): this route is public
        return _DatabaseState(False, error=f"cannot connect ({_kind(exc)})")


def _kind(exc: BaseException) -> str:
    """The driver's own error under SQLAlchemy's wrapper, by class name."""
    original = getattr(exc, "orig", None) or exc.__cause__ or exc
    return type(original).__name__


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    state = await database_state(request.app.state.db)
    database: dict[str, Any] = {
        "reachable": state.reachable,
        "dialect": request.app.state.db.dialect,
        "revision": state.revision,
    }
    if state.error:
        database["error"] = state.error
    body: dict[str, Any] = {
        "status": "ok" if state.reachable else "unavailable",
        "version": __version__,
        "database": database,
    }
    headers = {} if state.reachable else {"Retry-After": "5"}
    return JSONResponse(body, status_code=200 if state.reachable else 503, headers=headers)


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    state = await database_state(request.app.state.db)
    head = request.app.state.schema_head
    if not state.reachable:
        body = {"status": "unavailable", "reason": f"the database: {state.error}"}
    elif state.revision != head:
        body = {
            "status": "unavailable",
            "reason": f"the database schema is at {state.revision}, this server needs {head}; "
            "run smsgate migrate",
        }
    elif request.app.state.db.storage_full:
        body = {
            "status": "unavailable",
            "reason": "the database's storage is full: the last write failed for want of space",
        }
    else:
        return JSONResponse({"status": "ok"})
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
