"""Logging: readable lines in development, one JSON object a line in production
(SMSGATE_LOG_FORMAT=json), each with the request, account and device it concerns.

No secret and no message body is ever logged at info level: log calls pass ids, not payloads.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
account_id: contextvars.ContextVar[str] = contextvars.ContextVar("account_id", default="")
device_id: contextvars.ContextVar[str] = contextvars.ContextVar("device_id", default="")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in (
            ("requestId", request_id),
            ("accountId", account_id),
            ("deviceId", device_id),
        ):
            if var.get():
                entry[name] = var.get()
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(
            f"{name}={var.get()}"
            for name, var in (
                ("request", request_id),
                ("account", account_id),
                ("device", device_id),
            )
            if var.get()
        )
        line = f"{record.levelname.lower():7} {record.name}: {record.getMessage()}"
        line = f"{line} [{ids}]" if ids else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("smsgate")
    root.handlers = [handler]
    root.setLevel(level.upper())
    root.propagate = False


SCOPE_KEY = "smsgate.request_id"
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


class RequestIds:
    """Gives every request an id (an incoming X-Request-ID is kept) and answers it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"")[:64]
        # kept only when it is a plain token: it is answered back in a header and written in logs
        rid = given.decode("ascii") if _REQUEST_ID.fullmatch(given) else secrets.token_hex(8)
        token = request_id.set(rid)
        scope[SCOPE_KEY] = rid  # for the answer to a crash, made outside this middleware

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        try:
            await self.app(scope, receive, with_id)
        finally:
            request_id.reset(token)
