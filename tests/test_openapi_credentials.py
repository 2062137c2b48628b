"""The OpenAPI document tells the truth about credentials and error statuses: every operation of
the native and the third-party API is called with no credential, an API key, an access token, a
dashboard session and Basic e-mail and password; the ones its `security` lists must get past
authentication, the others must be refused (401 or 403), and every status answered must be one
the operation documents."""

from __future__ import annotations

import base64
import re
from typing import Any

from tests.factories import PASSWORD, new_client

# (method, path) whose calls end the credential they are made with: called last
ENDS_THE_SESSION = {("post", "/api/auth/logout")}
FAKE_ID = "cnotarealid00000000000000"


KINDS = ("none", "key", "token", "session", "basic")


def _accepted(security: list[dict[str, Any]]) -> set[str]:
    if not security:  # public: a credential sent along is not looked at
        return set(KINDS)
    kinds: set[str] = set()
    for requirement in security:
        if not requirement:
            kinds.add("none")
        if "apiKey" in requirement:
            kinds |= {"key", "token"}
        if "session" in requirement:
            kinds.add("session")
        if "basic" in requirement:
            kinds.add("basic")
    return kinds


def _url(path: str) -> str:
    path = path.replace("{phone_number}", "%2B5215500000000")
    return re.sub(r"\{[a-z_]+\}", FAKE_ID, path)


async def test_every_operation_takes_exactly_its_documented_credentials(make_user, app) -> None:
    user = await make_user()
    minted = await user.client.post("/api/auth/token", json={}, headers=user.csrf_header)
    assert minted.status_code == 201, minted.text
    token = minted.json()["accessToken"]
    basic = base64.b64encode(f"{user.email}:{PASSWORD}".encode()).decode()
    document = (await user.client.get("/openapi.json")).json()
    operations = [
        (method, path, operation)
        for path, methods in document["paths"].items()
        if path.startswith("/api/")
        and not path.startswith(("/api/mobile/", "/api/whatsapp/webhook/"))
        for method, operation in methods.items()
    ]
    operations.sort(key=lambda op: (op[0], op[1]) in ENDS_THE_SESSION)
    assert len(operations) > 50
    wrong: list[str] = []
    async with new_client(app) as anonymous:
        for method, path, operation in operations:
            accepted = _accepted(operation.get("security", []))
            for kind in KINDS:
                client = user.client if kind == "session" else anonymous
                headers = {
                    "none": {},
                    "key": user.auth,
                    "token": {"Authorization": f"Bearer {token}"},
                    "session": user.csrf_header,
                    "basic": {"Authorization": f"Basic {basic}"},
                }[kind]
                body: dict[str, Any] | None = {} if method in ("post", "patch", "put") else None
                if kind != "session":
                    anonymous.cookies.clear()
                answer = await client.request(method, _url(path), json=body, headers=headers)
                status = answer.status_code
                found = answer.json() if answer.content else None
                code = found.get("code") if isinstance(found, dict) else None
                if kind in accepted and (status == 401 or code == "session_required"):
                    wrong.append(f"{method} {path} {kind}: refused {status} {code}")
                if kind not in accepted and status not in (401, 403):
                    wrong.append(f"{method} {path} {kind}: not listed, but answered {status}")
                if str(status) not in operation["responses"]:
                    wrong.append(f"{method} {path} {kind}: {status} {code} is not documented")
    assert not wrong, "\n".join(wrong)
