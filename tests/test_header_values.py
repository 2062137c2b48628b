"""Values that came from senders or clients end up in answer headers only in a form a header
can hold: a CR/LF or a character outside Latin-1 gave a 500 or a dropped connection."""

from __future__ import annotations

import base64

from tests.factories import PASSWORD, pair_phone


async def test_an_odd_request_id_is_replaced_not_a_500(make_user) -> None:
    user = await make_user()
    for given in (b"\xff\xfe\xfd", "ñandú".encode(), b"two words", b"x" * 65):
        answer = await user.client.get(
            "/api/v1/messages", headers={**user.auth, "X-Request-ID": given}
        )
        assert answer.status_code == 200, (given, answer.text)
        assert answer.headers["X-Request-ID"] != given.decode("latin-1")
    kept = await user.client.get("/api/v1/messages", headers={**user.auth, "X-Request-ID": "ab-12"})
    assert kept.headers["X-Request-ID"] == "ab-12"


async def test_a_senders_file_name_and_type_are_safe_in_the_download(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    name = "recibo\r\nSet-Cookie: x=1 ñandú 収.jpg"
    await phone.inbox(
        [
            {
                "phoneNumber": "+5215512345678",
                "message": "foto",
                "type": "mms",
                "attachments": [
                    {
                        "contentType": "image/jpeg\r\nX-Evil: 1",
                        "name": name,
                        "data": base64.b64encode(b"JPEGDATA").decode(),
                    }
                ],
            }
        ]
    )
    [received] = (await user.client.get("/api/v1/inbox", headers=user.auth)).json()["data"]
    shown = await user.client.get(f"/api/v1/messages/{received['id']}", headers=user.auth)
    url = shown.json()["attachments"][0]["url"]
    file = await user.client.get(url, headers=user.auth)
    assert file.status_code == 200 and file.content == b"JPEGDATA"
    disposition = file.headers["Content-Disposition"]
    assert "\r" not in disposition and "\n" not in disposition and "set-cookie" not in file.headers
    assert (
        "filename*=UTF-8''recibo%0D%0ASet-Cookie%3A%20x%3D1%20%C3%B1and%C3%BA%20%E5%8F%8E.jpg"
        in disposition
    )
    assert file.headers["Content-Type"] == "application/octet-stream"
    assert "x-evil" not in file.headers


async def test_a_client_chosen_message_id_in_any_script_is_a_valid_location(make_user) -> None:
    user = await make_user(password=PASSWORD)
    basic = base64.b64encode(f"{user.email}:{PASSWORD}".encode()).decode()
    sent = await user.client.post(
        "/api/3rdparty/v1/messages",
        json={
            "id": "cita-ñ-収",
            "textMessage": {"text": "Hola"},
            "phoneNumbers": ["+5215512345678"],
        },
        headers={"Authorization": f"Basic {basic}"},
    )
    assert sent.status_code == 202, sent.text
    assert sent.headers["Location"] == "/api/3rdparty/v1/messages/cita-%C3%B1-%E5%8F%8E"


async def test_answers_that_carry_secrets_are_never_cached(make_user) -> None:
    user = await make_user()
    key = await user.client.post("/api/keys", json={"name": "n"}, headers=user.auth)
    device = await user.client.post("/api/devices/android", json={"name": "p"}, headers=user.auth)
    hook = await user.client.post(
        "/api/webhooks",
        json={"url": "https://hooks.example.com/x", "events": ["sms:sent"]},
        headers=user.auth,
    )
    secret = await user.client.get(f"/api/webhooks/{hook.json()['id']}/secret", headers=user.auth)
    token = await user.client.post("/api/auth/token", json={}, headers=user.csrf_header)
    refused = await user.client.get("/api/v1/messages")  # an error answer too
    for answer in (key, device, hook, secret, token, refused):
        assert answer.headers["Cache-Control"] == "no-store", answer.request.url
    phone = await pair_phone(user)
    settings = await phone.http.get(
        phone.base_url + "/settings", headers={"Authorization": f"Bearer {phone.token}"}
    )
    assert settings.json()["webhooks"]["signing_key"]
    assert settings.headers["Cache-Control"] == "no-store"
