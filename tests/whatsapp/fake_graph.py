"""A real local stand-in for Meta's Graph API (the WhatsApp Cloud API's send endpoint), and
the webhooks Meta would send, signed as Meta signs them.

Each test uses its own phone number id, so numbers behave independently. What the fake knows:
  - `tokens[number_id]`: the access token it accepts (anything else: error 190, HTTP 401);
  - `undeliverable`: recipients answered with error 131026 (not on WhatsApp);
  - `throttled[to] = n`: refuse the next n sends to `to` with 130429 (rate limit);
  - every accepted body is kept in `sent[number_id]` with the wamid it was given;
  - `media[media_id] = (bytes, mime type)`: files customers "sent", served as the Graph API does
    (GET /{version}/{media_id} gives a URL, fetched with the same token).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.serving import read_body, serving_asgi

_ids = itertools.count(1)


@dataclass
class FakeGraph:
    tokens: dict[str, str] = field(default_factory=dict)
    downloads: int = 0  # files served from /download/…
    undeliverable: set[str] = field(default_factory=set)
    throttled: dict[str, int] = field(default_factory=dict)
    sent: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    calls: int = 0
    # called with (number id, wamid) before a send is answered: Meta's callbacks can reach the
    # server before the answer reaches the line
    before_answer: Callable[[str, str], Awaitable[None]] | None = None

    def _file(self, path: str, headers: dict[str, str], base: str) -> tuple[int, Any, str]:
        known = set(self.tokens.values())
        if headers.get("authorization", "").removeprefix("Bearer ") not in known:
            return 401, _error(190, "Error validating access token"), "application/json"
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "download" and parts[1] in self.media:
            self.downloads += 1
            data, mime = self.media[parts[1]]
            return 200, data, mime
        if len(parts) == 2 and parts[1] in self.media:
            data, mime = self.media[parts[1]]
            answer = {
                "messaging_product": "whatsapp",
                "url": f"{base}/download/{parts[1]}",
                "mime_type": mime,
                "file_size": len(data),
                "id": parts[1],
            }
            return 200, answer, "application/json"
        return 404, _error(100, "Unsupported get request"), "application/json"

    def accepted(self, number_id: str) -> list[dict[str, Any]]:
        return self.sent[number_id]

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[2] != "messages":
            return 404, {"error": {"message": "Unknown path", "code": 803}}
        number_id = parts[1]
        if headers.get("authorization") != f"Bearer {self.tokens.get(number_id)}":
            return 401, _error(190, "Error validating access token", "OAuthException")
        try:
            data = json.loads(body)
        except ValueError:
            return 400, _error(100, "Invalid JSON")
        to = str(data.get("to", ""))
        if data.get("messaging_product") != "whatsapp" or not to.isdigit():
            return 400, _error(100, "Invalid parameter")
        if to in self.undeliverable:
            return 400, _error(131026, "Message Undeliverable.")
        if self.throttled.get(to, 0) > 0:
            self.throttled[to] -= 1
            return 400, _error(130429, "Rate limit hit")
        wamid = f"wamid.FAKE{next(_ids):08d}"
        self.sent[number_id].append({**data, "_wamid": wamid})
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": wamid}],
        }

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_body(receive)
        self.calls += 1
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        kind = "application/json"
        if scope["method"] == "GET":
            base = f"http://{headers.get('host', '127.0.0.1')}"
            status, answer, kind = self._file(scope["path"], headers, base)
        else:
            status, answer = self._answer(scope["path"], headers, body)
            wamids = answer.get("messages", []) if isinstance(answer, dict) else []
            if self.before_answer is not None and wamids:
                await self.before_answer(scope["path"].strip("/").split("/")[1], wamids[0]["id"])
        payload = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", kind.encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _error(code: int, message: str, kind: str = "OAuthException") -> dict[str, Any]:
    return {
        "error": {
            "message": f"({'#'}{code}) {message}",
            "type": kind,
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": message},
            "fbtrace_id": "AbCdEf",
        }
    }


@asynccontextmanager
async def serving(port: int) -> AsyncIterator[FakeGraph]:
    fake = FakeGraph()
    async with serving_asgi(fake, port):
        yield fake


# --- what Meta posts to our webhook --------------------------------------------------------


def signed(payload: dict[str, Any], app_secret: str) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(payload).encode()
    digest = hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}


def _envelope(number_id: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": number_id,
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def inbound(number_id: str, sender: str, text: str, wamid: str, name: str = "Ana") -> dict:
    """A text message from `sender` (digits, as WhatsApp writes wa_ids)."""
    return _envelope(
        number_id,
        {
            "contacts": [{"profile": {"name": name}, "wa_id": sender}],
            "messages": [
                {
                    "from": sender,
                    "id": wamid,
                    "timestamp": str(int(time.time())),
                    "type": "text",
                    "text": {"body": text},
                }
            ],
        },
    )


def inbound_image(number_id: str, sender: str, media_id: str, caption: str, wamid: str) -> dict:
    """A photo from `sender`, as Meta announces it: an id, a MIME type, a caption."""
    return _envelope(
        number_id,
        {
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": sender}],
            "messages": [
                {
                    "from": sender,
                    "id": wamid,
                    "timestamp": str(int(time.time())),
                    "type": "image",
                    "image": {"id": media_id, "mime_type": "image/jpeg", "caption": caption},
                }
            ],
        },
    )


def status(
    number_id: str, wamid: str, state: str, recipient: str, error_code: int | None = None
) -> dict:
    item: dict[str, Any] = {
        "id": wamid,
        "status": state,
        "timestamp": str(int(time.time())),
        "recipient_id": recipient,
    }
    if error_code is not None:
        item["errors"] = [
            {
                "code": error_code,
                "title": "Re-engagement message",
                "message": "Re-engagement message",
                "error_data": {"details": "Message failed to send because more than 24 hours"},
            }
        ]
    return _envelope(number_id, {"statuses": [item]})
