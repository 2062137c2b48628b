"""The third-party API's answers, operation by operation, in the shapes the ecosystem's clients
decode (tests/compat/reference_shapes.py): status, required fields, types and values."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs

from tests.compat.reference_shapes import ANSWERS
from tests.factories import PASSWORD, pair_phone

BASE = "/api/3rdparty/v1"


async def test_answers_have_the_reference_shapes(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    await phone.inbox([{"phoneNumber": "+5215512345678", "message": "hola", "id": "ref-1"}])
    await phone.logs([{"level": "warn", "message": "battery low"}])
    http, basic = user.client, httpx.BasicAuth(user.email, PASSWORD)
    problems: list[str] = []
    checked: set[tuple[str, str]] = set()

    async def call(method: str, path: str, url: str | None = None, **kwargs: Any) -> Any:
        kwargs.setdefault("auth", basic)
        answer = await http.request(method.upper(), BASE + (url or path), **kwargs)
        status, schema = ANSWERS[(method, path)]
        checked.add((method, path))
        if answer.status_code != status:
            problems.append(f"{method} {path}: {answer.status_code}, not {status}: {answer.text}")
            return None
        validator = jsonschema_rs.Draft4Validator(schema)
        problems.extend(
            f"{method} {path}: {e.message}" for e in validator.iter_errors(answer.json())
        )
        return answer.json()

    tokens = await call("post", "/auth/token", json={"scopes": ["messages:send", "messages:read"]})
    refresh = {"Authorization": f"Bearer {tokens['refresh_token']}"}
    await call("post", "/auth/token/refresh", headers=refresh, auth=None)
    await call("get", "/health")
    await call("get", "/devices")
    await call("get", "/inbox")
    logs = await call("get", "/logs")
    again = (await http.get(f"{BASE}/logs", auth=basic)).json()
    assert [e["id"] for e in again] == [e["id"] for e in logs]  # a log entry keeps its number
    body = {"textMessage": {"text": "hola"}, "phoneNumbers": ["+5215512345678"]}
    sent = await call("post", "/messages", json=body)
    await call("get", "/messages")
    await call("get", "/messages/{id}", f"/messages/{sent['id']}")
    await call("delete", "/messages/{id}", f"/messages/{sent['id']}")
    await call("get", "/settings")
    intervals = {"send_interval_min": 1, "send_interval_max": 5}
    await call("patch", "/settings", json={"messages": intervals})
    hook = {"url": "https://hooks.example.com/in", "event": "sms:received"}
    await call("post", "/webhooks", json=hook)
    await call("get", "/webhooks")

    assert problems == []
    assert checked == set(ANSWERS)
