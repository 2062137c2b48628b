"""The third-party send answers a new message from what was written, without reading it back:
the answer must be exactly what reading the message gives right after."""

from __future__ import annotations

import base64

from tests.factories import PASSWORD, add_device


async def test_a_send_answers_what_reading_it_back_gives(make_user, app, client) -> None:
    user = await make_user()
    basic = "Basic " + base64.b64encode(f"{user.email}:{PASSWORD}".encode()).decode()
    headers = {"Authorization": basic}
    device_id = await add_device(app, user.account_id)
    bodies = [
        {"id": "order-1", "phoneNumbers": ["+5215555555555"], "textMessage": {"text": "Hola"}},
        {  # two recipients, one written twice; pinned to a phone; encrypted flag kept
            "phoneNumbers": ["+525512345678", "+52 55 1234 5678", "+12025550177"],
            "message": "Hola",
            "deviceId": device_id,
            "withDeliveryReport": False,
        },
        {"phoneNumbers": ["+525512345679"], "dataMessage": {"data": "AQI=", "port": 53739}},
        {"id": "order-1", "phoneNumbers": ["+5215555555555"], "textMessage": {"text": "Hola"}},
    ]
    for body in bodies:
        sent = await client.post("/api/3rdparty/v1/messages", json=body, headers=headers)
        assert sent.status_code == 202, sent.text
        answer = sent.json()
        assert sent.headers["location"] == f"/api/3rdparty/v1/messages/{answer['id']}"
        read = await client.get(sent.headers["location"], headers=headers)
        assert read.status_code == 200, read.text
        assert answer == read.json(), body
    assert answer["id"] == "order-1" and answer["state"] == "Pending"
