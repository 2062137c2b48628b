"""The SMSGate app plus one trivial JSON endpoint, the benchmarks' ceiling on the same server.

`POST /bench/echo` parses a small JSON body into a pydantic model and answers it back: the
framework's own cost for a JSON request, with no auth and no database.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

from smsgate.app import create_app


class Echo(BaseModel):
    phoneNumbers: list[str]
    message: str


def create_bench_app() -> FastAPI:
    app = create_app()

    @app.post("/bench/echo")
    async def echo(body: Echo) -> Echo:
        return body

    # matched first, so the ceiling does not pay for scanning the app's other routes
    app.router.routes.insert(0, app.router.routes.pop())
    return app
