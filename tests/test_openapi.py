"""/openapi.json tells the truth about credentials, errors and links (smsgate/ops/openapi.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import jsonschema_rs

from smsgate.kit import clock
from smsgate.ops.answers import RESPONSES
from tests.factories import PASSWORD, new_client, pair_phone, send

DUMMY_ID = "cnotarealid00000000000000"

DAY = timedelta(days=1)


async def test_every_operation_declares_the_credential_it_really_needs(app) -> None:
    """Asked with no credential at all, an operation that declares one answers 401, and one
    that declares none (or an optional one) answers something else: the document and the
    server agree on every operation."""
    async with new_client(app) as anonymous:
        spec = (await anonymous.get("/openapi.json")).json()
        disagreements = []
        checked = 0
        for path, operations in spec["paths"].items():
            url = re.sub(r"{[^}]+}", DUMMY_ID, path)
            for method, operation in operations.items():
                if path == "/api/mobile/v1/events":
                    continue  # a stream: its 401 is tested in tests/mobile/test_live.py
                security = operation.get("security", [])
                required = bool(security) and {} not in security
                body: dict[str, Any] | None = {} if method in ("post", "put", "patch") else None
                answer = await anonymous.request(method.upper(), url, json=body)
                checked += 1
                if required != (answer.status_code == 401):
                    disagreements.append(
                        f"{method.upper()} {path}: declares {security}, answered "
                        f"{answer.status_code}"
                    )
    assert checked > 80
    assert disagreements == []


async def test_schemes_and_errors_are_the_api_s_own(client) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "http", "scheme": "bearer"}
    assert schemes["session"]["in"] == "cookie"
    send = spec["paths"]["/api/v1/send"]["post"]
    assert send["security"] == [{"apiKey": []}, {"session": []}]
    assert set(send["responses"]) >= {"202", "400", "401", "422"}
    error = send["responses"]["400"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Error"}
    assert spec["components"]["schemas"]["Error"]["required"] == ["error", "code"]
    # the third-party API answers errors as the reference server does: {"message": ...}
    compat = spec["paths"]["/api/3rdparty/v1/messages"]["get"]["responses"]["400"]
    compat_schema = compat["content"]["application/json"]["schema"]
    assert compat_schema == {"$ref": "#/components/schemas/CompatError"}
    assert spec["components"]["schemas"]["CompatError"]["required"] == ["message"]
    # and its bodies, which its routes read by hand, are described (compat/bodies.py)
    body = spec["paths"]["/api/3rdparty/v1/messages"]["post"]["requestBody"]
    message = body["content"]["application/json"]["schema"]
    assert message["required"] == ["phoneNumbers"] and "scheduleAt" in message["properties"]
    put = spec["paths"]["/api/3rdparty/v1/settings"]["put"]["requestBody"]
    document = put["content"]["application/json"]["schema"]["properties"]
    assert document["messages"]["properties"]["limit_period"]["anyOf"][0]["enum"][0] == "Disabled"
    # FastAPI's default 422 shape is never sent by this API, so it is not documented
    assert "HTTPValidationError" not in str(spec)
    assert spec["paths"]["/api/mobile/v1/message"]["get"]["security"] == [{"deviceToken": []}]
    assert spec["paths"]["/api/mobile/v1/user/code"]["get"]["security"] == [{"basic": []}]
    assert "security" not in spec["paths"]["/api/auth/login"]["post"]
    # rules the server checks by hand are documented too
    password = spec["components"]["schemas"]["SignupIn"]["properties"]["password"]
    assert (password["minLength"], password["maxLength"]) == (10, 256)


async def test_a_created_webhook_s_link_leads_to_it(make_user) -> None:
    """The links are real: the expression on POST /api/webhooks's answer, applied to a real
    answer, names the webhook that GET /api/webhooks/{webhook_id} then serves."""
    user = await make_user()
    spec = (await user.client.get("/openapi.json")).json()
    create = spec["paths"]["/api/webhooks"]["post"]
    links = create["responses"]["201"]["links"]
    schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/WebhookIn"}
    body = spec["components"]["schemas"]["WebhookIn"]["examples"][0]
    assert body["events"] == ["sms:received", "sms:delivered"]
    created = await user.client.post(
        "/api/webhooks", json={**body, "url": "http://127.0.0.1:9/hook"}, headers=user.auth
    )
    assert created.status_code == 201, created.text
    get = spec["paths"]["/api/webhooks/{webhook_id}"]["get"]
    link = links[get["operationId"]]
    assert link["parameters"] == {"webhook_id": "$response.body#/id"}
    pointer = link["parameters"]["webhook_id"].removeprefix("$response.body#/")
    fetched = await user.client.get(f"/api/webhooks/{created.json()[pointer]}", headers=user.auth)
    assert fetched.status_code == 200 and fetched.json()["id"] == created.json()["id"]
    # and the other way round: every link's target operation exists
    operation_ids = {
        operation["operationId"]
        for operations in spec["paths"].values()
        for operation in operations.values()
    }
    every_link = [
        link["operationId"]
        for operations in spec["paths"].values()
        for operation in operations.values()
        for response in operation["responses"].values()
        for link in response.get("links", {}).values()
    ]
    assert len(every_link) > 20 and set(every_link) <= operation_ids


def _answer_checker(spec: dict[str, Any]) -> Callable[[str, str, httpx.Response], list[str]]:
    """Checks an answer against the schema the document gives its operation and status; notes
    each operation checked."""
    checked: set[tuple[str, str]] = set()

    def check(method: str, path: str, answer: httpx.Response) -> list[str]:
        described = spec["paths"][path][method]["responses"][str(answer.status_code)]
        schema = described["content"]["application/json"]["schema"]
        validator = jsonschema_rs.Draft202012Validator({**schema, "components": spec["components"]})
        checked.add((method, path))
        return [f"{method} {path}: {e.message}" for e in validator.iter_errors(answer.json())]

    check.checked = checked  # type: ignore[attr-defined]
    return check


async def test_answers_have_the_documented_shapes(make_user) -> None:
    """Every operation whose answer the document describes (smsgate/ops/answers.py) answers in that
    shape exactly, with no field it does not describe (reliability checklist 32: a key's hash
    or a webhook's secret would show up here)."""
    user = await make_user()
    spec = (await user.client.get("/openapi.json")).json()
    check = _answer_checker(spec)
    http, auth = user.client, user.auth
    problems: list[str] = []

    async def call(method: str, path: str, url: str | None = None, **kwargs: Any) -> Any:
        answer = await http.request(method.upper(), url or path, **kwargs)
        assert answer.status_code < 300, f"{method} {url or path}: {answer.text}"
        problems.extend(check(method, path, answer))
        return answer.json()

    await call("get", "/api/auth/me", headers=auth)
    key = await call("post", "/api/keys", json={"name": "shapes"}, headers=auth)
    await call("get", "/api/keys", headers=auth)
    await call("delete", "/api/keys/{key_id}", f"/api/keys/{key['id']}", headers=auth)
    pair = await call("post", "/api/auth/token", json={}, headers=user.csrf_header)
    body = {"refreshToken": pair["refreshToken"]}
    await call("post", "/api/auth/token/refresh", json=body)
    await call("get", "/api/auth/tokens", headers=auth)
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["sms:received"]}
    made = await call("post", "/api/webhooks", json=hook, headers=auth)
    await call("get", "/api/webhooks", headers=auth)
    one = f"/api/webhooks/{made['id']}"
    await call("get", "/api/webhooks/{webhook_id}", one, headers=auth)
    await call("patch", "/api/webhooks/{webhook_id}", one, json={"enabled": False}, headers=auth)
    device = await call("post", "/api/devices/android", json={"name": "shapes"}, headers=auth)
    await call("get", "/api/devices", headers=auth)
    await call("get", "/api/devices/{device_id}", f"/api/devices/{device['id']}", headers=auth)
    await call(
        "patch",
        "/api/devices/{device_id}",
        f"/api/devices/{device['id']}",
        json={"name": "Caja 2"},
        headers=auth,
    )
    send = {"phoneNumbers": ["+5215512345678"], "message": "hola", "externalId": "shapes-1"}
    sent = await call("post", "/api/v1/send", json=send, headers=auth)
    await call("post", "/api/v1/send", json=send, headers=auth)  # the replay's 200
    await call("get", "/api/v1/messages", headers=auth)
    message = f"/api/v1/messages/{sent['id']}"
    await call("get", "/api/v1/messages/{message_id}", message, headers=auth)
    later = {**send, "externalId": "shapes-2", "scheduleAt": clock.iso(clock.now() + DAY)}
    scheduled = await call("post", "/api/v1/send", json=later, headers=auth)
    edit = {"message": "hola de nuevo"}
    edited = f"/api/v1/messages/{scheduled['id']}"
    await call("patch", "/api/v1/messages/{message_id}", edited, json=edit, headers=auth)
    cancel = "/api/v1/messages/{message_id}/cancel"
    await call("post", cancel, f"{message}/cancel", headers=auth)
    # a received message opens a conversation
    phone = await pair_phone(user)
    await phone.inbox([{"phoneNumber": "+5215512345678", "message": "hola", "id": "shapes-in"}])
    await call("get", "/api/v1/inbox", headers=auth)
    threads = await call("get", "/api/conversations", headers=auth)
    thread = "/api/conversations/{conversation_id}"
    one = f"/api/conversations/{threads['data'][0]['id']}"
    await call("get", thread, one, headers=auth)
    await call("patch", thread, one, json={"displayName": "Ana"}, headers=auth)
    await call("get", f"{thread}/messages", f"{one}/messages", headers=auth)
    await call("post", f"{thread}/send", f"{one}/send", json={"message": "hola"}, headers=auth)
    await call("post", f"{thread}/read", f"{one}/read", json={}, headers=auth)
    number = {"phoneNumber": "+5215599999999"}
    await call("post", "/api/opt-outs", json=number, headers=auth)
    await call("get", "/api/opt-outs", headers=auth)
    opt_out = "/api/opt-outs/{phone_number}"
    await call("delete", opt_out, "/api/opt-outs/%2B5215599999999", headers=auth)
    await call("get", "/api/account/settings", headers=auth)
    await call("patch", "/api/account/settings", json={"rerouteStalled": True}, headers=auth)
    # contacts, templates and a campaign (whose messages carry its id)
    ana = {"phoneNumber": "+525511112222", "name": "Ana", "tags": ["vip"]}
    contact = await call("post", "/api/contacts", json=ana, headers=auth)
    await call("get", "/api/contacts", headers=auth)
    person = "/api/contacts/{contact_id}"
    one = f"/api/contacts/{contact['id']}"
    await call("get", person, one, headers=auth)
    await call("patch", person, one, json={"fields": {"ciudad": "CDMX"}}, headers=auth)
    sheet = {"file": ("c.csv", b"phoneNumber,nombre\n+525533334444,Luis\nx,y\n", "text/csv")}
    await call("post", "/api/contacts/import", files=sheet, headers=auth)
    text = {"name": "cita", "message": "Hola {nombre}"}
    template = await call("post", "/api/templates", json=text, headers=auth)
    await call("get", "/api/templates", headers=auth)
    model, named = "/api/templates/{template_id}", f"/api/templates/{template['id']}"
    await call("get", model, named, headers=auth)
    await call("patch", model, named, json={"name": "cita 2"}, headers=auth)
    rows = {"rows": [{"nombre": "Ana"}, {"nombre": ""}]}
    await call("post", f"{model}/preview", f"{named}/preview", json=rows, headers=auth)
    people = [{"phoneNumber": "+525544445555", "nombre": "Eva"}, {"phoneNumber": "x"}]
    body = {"name": "c", "templateId": template["id"], "recipients": people}
    campaign = await call("post", "/api/campaigns", json=body, headers=auth)
    await call("get", "/api/campaigns", headers=auth)
    await call("get", "/api/v1/messages", headers=auth)
    run, this = "/api/campaigns/{campaign_id}", f"/api/campaigns/{campaign['id']}"
    await call("get", run, this, headers=auth)
    await call("post", f"{run}/recipients", f"{this}/recipients", files=sheet, headers=auth)
    await call("post", f"{run}/cancel", f"{this}/cancel", headers=auth)
    draft = await call("post", "/api/campaigns", json={**body, "draft": True}, headers=auth)
    kept = f"/api/campaigns/{draft['id']}"
    await call("post", f"{run}/send", f"{kept}/send", json={}, headers=auth)
    await call("delete", model, named, headers=auth)
    await call("delete", person, one, headers=auth)

    assert problems == []
    account_api = {op for op in RESPONSES if not op[1].startswith("/api/mobile/")}
    assert check.checked == account_api  # type: ignore[attr-defined]
    # and the check can fail: an answer with one field more than its shape is refused
    listing = await http.get("/api/keys", headers=auth)
    leaked = httpx.Response(200, json={**listing.json(), "keyHash": "0" * 64})
    assert check("get", "/api/keys", leaked) != []
    row = {**listing.json()["data"][0], "keyHash": "0" * 64}
    leaked = httpx.Response(200, json={"data": [row], "nextCursor": None})
    assert check("get", "/api/keys", leaked) != []


async def test_the_phones_answers_have_the_documented_shapes(make_user) -> None:
    """The phones' API as the app reads it: exactly these fields, and an optional one absent,
    never null (docs/android-app-protocol.md)."""
    user = await make_user()
    spec = (await user.client.get("/openapi.json")).json()
    check = _answer_checker(spec)
    http = user.client
    problems: list[str] = []

    async def call(method: str, path: str, **kwargs: Any) -> Any:
        answer = await http.request(method.upper(), path, **kwargs)
        assert answer.status_code < 300, f"{method} {path}: {answer.text}"
        problems.extend(check(method, path, answer))
        return answer.json()

    made = await http.post("/api/devices/android", json={"name": "shapes"}, headers=user.auth)
    pairing = {"Authorization": f"Bearer {made.json()['pairing']['token']}"}
    device = await call("post", "/api/mobile/v1/device", json={"name": "a/b"}, headers=pairing)
    phone = {"Authorization": f"Bearer {device['token']}"}
    await call("get", "/api/mobile/v1/device", headers=phone)
    await call("get", "/api/mobile/v1/device")  # no token: only the address
    # what a pull can hold: text with a SIM and an expiry, data, and one being cancelled
    await send(user, simNumber=2, ttl=3600, deviceId=device["id"])
    await send(user, channel="data", message="aGVsbG8=", port=8080, deviceId=device["id"])
    taken = (await send(user, deviceId=device["id"])).json()["id"]
    pulled = await call("get", "/api/mobile/v1/message", headers=phone)
    assert len(pulled) == 3
    report = [{"id": taken, "state": "Processed", "recipients": []}]
    assert (await http.patch("/api/mobile/v1/message", json=report, headers=phone)).is_success
    await http.post(f"/api/v1/messages/{taken}/cancel", headers=user.auth)
    pulled = await call("get", "/api/mobile/v1/message", headers=phone)
    assert [m["state"] for m in pulled if m["id"] == taken] == ["Cancelling"]
    await call("get", "/api/mobile/v1/webhooks", headers=phone)
    basic = httpx.BasicAuth(user.email, PASSWORD)
    await call("get", "/api/mobile/v1/user/code", auth=basic)
    inbound = {"messages": [{"phoneNumber": "+5215512345678", "message": "hola", "id": "s1"}]}
    await call("post", "/api/mobile/v1/inbox", json=inbound, headers=phone)
    logs = [{"level": "info", "message": "hola"}]
    await call("post", "/api/mobile/v1/logs", json=logs, headers=phone)

    assert problems == []
    assert {op for op in check.checked if op[1].startswith("/api/mobile/")} == {  # type: ignore[attr-defined]
        op for op in RESPONSES if op[1].startswith("/api/mobile/")
    }
    # and a null where the app expects the field absent is refused
    nulled = httpx.Response(200, json=[{**pulled[0], "simNumber": None}])
    assert check("get", "/api/mobile/v1/message", nulled) != []
