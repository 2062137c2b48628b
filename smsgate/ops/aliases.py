"""`/api/v1/<resource>` for every `/api/<resource>`: the API reference gives `…/api/v1` as its
base, so a client built on that base asks for `/api/v1/devices`, `/api/v1/webhooks`, … One
route, matched after every other (the paths that exist are never slowed by it), hands such a
request to the router again under its `/api/` path: the same route, the same answer.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Match, Router
from starlette.types import Receive, Scope, Send

V1 = "/api/v1/"
# the native API's resources outside /api/v1 (the phones' and the third-party API are other
# protocols, with bases of their own)
RESOURCES = frozenset(
    {
        "account",
        "auth",
        "billing",
        "conversations",
        "devices",
        "keys",
        "opt-outs",
        "webhooks",
        "whatsapp",
    }
)


class V1Aliases(BaseRoute):
    def __init__(self, router: Router) -> None:
        self.router = router

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "")
        aliased = path.startswith(V1) and path[len(V1) :].split("/", 1)[0] in RESOURCES
        return (Match.FULL if aliased and scope["type"] == "http" else Match.NONE), {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = "/api/" + scope["path"][len(V1) :]
        raw = scope.get("raw_path") or scope["path"].encode()
        raw_path = b"/api/" + raw[len(V1) :] if raw.startswith(V1.encode()) else path.encode()
        moved = {**scope, "path": path, "raw_path": raw_path}
        await self.router(moved, receive, send)
