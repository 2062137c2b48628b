"""JSON answers, and a lean way to serve the busiest route.

`JSONResponse` is Starlette's with its body written by pydantic-core's serializer (Rust) instead
of the standard library's `json.dumps`: the same bytes for the plain JSON values our answers
hold (compact, UTF-8, keys in order), about a quarter of the time (a send's answer: 9 -> 2.4 µs).
It is the app's default response class, so every route answers through it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import pydantic_core
from fastapi.routing import APIRoute, APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

NO_STORE = (b"cache-control", b"no-store")


class JSONResponse(_StarletteJSON):
    """Every JSON answer also says `Cache-Control: no-store` unless its route chose otherwise:
    an answer holds one account's data, and many hold secrets (API keys, tokens, pairing codes,
    webhook secrets, a phone's signing key) that no shared or browser cache may keep."""

    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content)

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        super().init_headers(headers)
        if not headers or not any(name.lower() == "cache-control" for name in headers):
            self.raw_headers.append(NO_STORE)


def api_router(**options: Any) -> APIRouter:
    """Every router of the app: its routes answer with JSONResponse above. (The app's own
    `default_response_class` does not reach them: their routes are added to the app directly,
    not included, see app._add_routes.)"""
    return APIRouter(default_response_class=JSONResponse, **options)


def serve_lean(router: APIRouter, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
    """Serve the router's route for `endpoint` by calling it with the request and sending the
    answer it returns, without FastAPI's per-request machinery (dependency solving, exit
    stacks, its own exception wrapping): 11 % of a send's instructions in-process (callgrind).

    For an endpoint declared `async def f(request: Request) -> Response` that reads its
    credential and body itself. The route stays FastAPI's for matching and for the OpenAPI
    document; its errors go to the app's exception handlers as any route's do (the
    ExceptionMiddleware around the router holds the same handlers). Every route of the
    endpoint (an alias path too) is served so."""
    routes = [r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is endpoint]
    assert routes, f"no route serves {endpoint.__name__}"

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    for route in routes:
        route.app = app


_TOKEN = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")


def content_disposition(name: str) -> str:
    """`attachment` with a file name a sender chose, in any script: an ASCII fallback without
    quotes, backslashes or control characters, and the exact name percent-encoded as UTF-8
    (RFC 6266). Put as given, a CR/LF ended the header and a non-Latin-1 name was a 500."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name) or "file"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def media_type(value: str | None) -> str:
    """A stored content type as a header value: `type/subtype` as given, else a download."""
    kind = (value or "").split(";", 1)[0].strip()
    return kind if _TOKEN.fullmatch(kind) else "application/octet-stream"
