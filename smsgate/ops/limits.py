"""Limits on what a request may make the server hold: the size of its headers and body, and how
long its body may take to arrive. Enforced while reading, before any route sees the request, so
an oversized or trickling body costs the server neither memory nor a worker for long."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smsgate.errors import COMPAT_PREFIX, error_body
from smsgate.kit.responses import JSONResponse

# the routes that carry files: the phones' received MMS with their attachments (base64 in
# JSON), and the spreadsheets of campaigns and contact imports
ATTACHMENT_PATHS = (
    "/api/mobile/v1/ingest/",
    "/api/mobile/v1/inbox",
    "/api/campaigns",
    "/api/contacts/import",
    "/dashboard/campaigns",
)


class RequestLimits:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        max_attachment_body: int,
        max_headers: int,
        body_timeout: float,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_attachment_body = max(max_body, max_attachment_body)
        self.max_headers = max_headers
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        if sum(len(name) + len(value) for name, value in headers) > self.max_headers:
            text = f"the request's headers are larger than {self.max_headers} bytes"
            await _refuse(scope, receive, send, 431, error_body(text, "headers_too_large"))
            return
        path: str = scope.get("path", "")
        limit = self.max_attachment_body if path.startswith(ATTACHMENT_PATHS) else self.max_body
        for name, value in headers:
            if name == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    body = error_body(_too_large(limit), "body_too_large")
                    await _refuse(scope, receive, send, 413, body)
                    return
                break
        if scope.get("method") in ("GET", "HEAD"):  # no body is read (a declared one was checked)
            await self.app(scope, receive, send)
            return
        answered = False  # this middleware refused the body: the route's own answer is dropped
        seen = 0
        whole = False  # the body has all arrived: later calls wait for a disconnect, unbounded
        timeout = self.body_timeout

        async def guarded(message: Message) -> None:
            if not answered:
                await send(message)

        async def bounded() -> Message:
            """The body, refused past `limit` bytes or when a chunk takes longer than the body
            timeout: the answer (413 or 408) is sent from here, and the route, which sees the
            client gone, answers nothing."""
            nonlocal seen, whole, answered
            if whole or answered:
                return await receive()
            try:
                async with asyncio.timeout(timeout):
                    message = await receive()
            except TimeoutError:
                text = f"the request's body did not arrive within {timeout:g} seconds"
                await _refuse(scope, receive, send, 408, error_body(text, "request_timeout"))
                answered = True
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                whole = not message.get("more_body", False)
                if seen > limit:
                    body = error_body(_too_large(limit), "body_too_large")
                    await _refuse(scope, receive, send, 413, body)
                    answered = True
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, bounded, guarded)


def _too_large(limit: int) -> str:
    return f"the request's body is larger than {limit} bytes"


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, body: dict[str, str]
) -> None:
    """An answer before any route: in the third-party API's shape on its paths; the connection
    is closed after it (the rest of the body is not read)."""
    if str(scope.get("path", "")).startswith(COMPAT_PREFIX):
        body = {"message": body["error"]}
    answer = JSONResponse(body, status_code=status, headers={"Connection": "close"})
    await answer(scope, receive, send)
