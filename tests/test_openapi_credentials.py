"""The OpenAPI document tells the truth about credentials and error statuses: every operation of
the native API is called with no credential, an API key, an access token and a dashboard
session; the ones its `security` lists must get past authentication, the others must be refused
(401 or 403), and every status answered must be one the operation documents."""

from __future__ import annotations

import re
from typing import Any

from tests.factories import new_client

# (method, path) whose calls end the credential they are made with: called last
ENDS_THE_SESSION = {("post", "/api/auth/logout")}
FAKE_ID = "cnotarealid00000000000000"


def _accepted(security: list[dict[str, Any]]) -> set[str]:
    if not security:  # public: a credential sent along is not looked at
        return {"none", "key", "token", "session"}
    kinds: set[str] = set()
    for requirement in security:
        if not requirement:
            kinds.add("none")
        if "apiKey" in requirement:
            kinds |= {"key", "token"}
        if "session" in requirement:
            kinds.add("session")
    return kinds


def _url(path: str) -> str:
    path = path.replace("{phone_number}", "%2B5215500000000")
    return re.sub(r"\{[a-z_]+\}", FAKE_ID, path)


async def test_every_operation_takes_exactly_its_documented_credentials(make_user, app) -> None:
    user = await make_user()
    minted = await user.client.post("/api/auth/token", json={}, headers=user.csrf_header)
    assert minted.status_code == 201, minted.text
    token = minted.json()["accessToken"]
    document = (await user.client.get("/openapi.json")).json()
    operations = [
        (method, path, operation)
        for path, methods in document["paths"].items()
        if path.startswith("/api/")
        and not path.startswith(("/api/mobile/", "/api/3rdparty/", "/api/whatsapp/webhook/"))
        for method, operation in methods.items()
    ]
    operations.sort(key=lambda op: (op[0], op[1]) in ENDS_THE_SESSION)
    assert len(operations) > 50
    wrong: list[str] = []
    async with new_client(app) as anonymous:
        for method, path, operation in operations:
            accepted = _accepted(operation.get("security", []))
            for kind in ("none", "key", "token", "session"):
                client = user.client if kind == "session" else anonymous
                headers = {
                    "none": {},
                    "key": user.auth,
                    "token": {"Authorization": f"Bearer {token}"},
                    "session": user.csrf_header,
                }[kind]
                body = {} if method in ("post", "patch", "put") else None
                if kind != "session":
                    anonymous.cookies.clear()
                answer = await client.request(method, _url(path), json=body, headers=headers)
                status = answer.status_code
                code = answer.json().get("code") if answer.content else None
                if kind in accepted and (status == 401 or code == "session_required"):
                    wrong.append(f"{method} {path} {kind}: refused {status} {code}")
                if kind not in accepted and status not in (401, 403):
                    wrong.append(f"{method} {path} {kind}: not listed, but answered {status}")
                if str(status) not in operation["responses"]:
                    wrong.append(f"{method} {path} {kind}: {status} {code} is not documented")
    assert not wrong, "\n".join(wrong)
