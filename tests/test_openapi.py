"""/openapi.json tells the truth about credentials, errors and links (smsgate/openapi.py)."""

from __future__ import annotations

import re

from tests.factories import new_client

DUMMY_ID = "cnotarealid00000000000000"


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
                body = {} if method in ("post", "put", "patch") else None
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
