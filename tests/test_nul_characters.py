"""The NUL character (\\u0000) cannot be stored in PostgreSQL text: anywhere in a request it is a
400 that says so, never a 500, and nothing is stored (found by a Schemathesis run against
PostgreSQL: a login e-mail and a WhatsApp line's name with NUL answered 500)."""

from __future__ import annotations


async def test_a_nul_in_any_body_string_is_a_400_naming_the_field(make_user, app) -> None:
    user = await make_user()
    cases = [
        ("/api/auth/login", {"email": "a\x00@example.com", "password": "x" * 12}, "email"),
        ("/api/v1/send", {"phoneNumbers": ["+5215555555555"], "message": "ho\x00la"}, "message"),
        (
            "/api/v1/send",
            {"phoneNumbers": ["+5215555555555", "+52155\x0055555555"], "message": "hola"},
            "phoneNumbers[1]",
        ),
        ("/api/devices/android", {"name": "\x00"}, "name"),
        (
            "/api/webhooks",
            {"url": "https://hooks.example.com/\x00", "events": ["sms:received"]},
            "url",
        ),
    ]
    for path, body, field in cases:
        answer = await user.client.post(path, json=body, headers=user.auth)
        assert answer.status_code == 400, (path, answer.text)
        error = answer.json()
        assert error["code"] == "validation_error" and error["field"] == field, error
        assert (
            error["error"]
            == f"{field}: contains the NUL character (\\u0000), which cannot be stored"
        )
    listed = await user.client.get("/api/v1/messages", headers=user.auth)
    assert listed.json()["data"] == []
    devices = await user.client.get("/api/devices", headers=user.auth)
    assert devices.json()["data"] == []


async def test_a_nul_in_a_path_or_query_is_never_a_500(make_user, app) -> None:
    user = await make_user()
    seen = {}
    for path in (
        "/api/webhooks/%00",
        "/api/devices/abc%00def",
        "/api/conversations?search=%00",
        "/api/v1/inbox?phoneNumber=%00",
        "/api/v1/messages?deviceId=%00",
    ):
        answer = await user.client.get(path, headers=user.auth)
        seen[path] = (answer.status_code, answer.json())
    assert all(status < 500 for status, _ in seen.values()), seen
    # this one reaches a query with the NUL: PostgreSQL refuses it, and that is the client's 400
    status, body = seen["/api/v1/inbox?phoneNumber=%00"]
    if app.state.db.dialect == "postgresql":
        assert (status, body["code"]) == (400, "validation_error") and "NUL" in body["error"]
    else:
        assert status == 200  # SQLite stores and compares NUL like any character
