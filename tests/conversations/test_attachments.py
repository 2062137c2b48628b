"""Received MMS: attachments stored up to the cap and served only to their owner."""

from __future__ import annotations

import base64

from tests.factories import new_client, pair_phone

JPEG = b"\xff\xd8\xff\xe0" + b"x" * 1000


async def test_mms_attachments_are_kept_and_served_to_their_owner(make_user, settings, app) -> None:
    user, other = await make_user(), await make_user()
    phone = await pair_phone(user)
    too_big = base64.b64encode(b"y" * (settings.mms_attachment_max_bytes + 1)).decode()
    [message_id] = await phone.inbox(
        [
            {
                "phoneNumber": "+5215512345678",
                "type": "mms",
                "message": "mira",
                "id": "mms-9",
                "attachments": [
                    {
                        "contentType": "image/jpeg",
                        "name": "foto.jpg",
                        "data": base64.b64encode(JPEG).decode(),
                    },
                    {"contentType": "video/mp4", "name": "grande.mp4", "data": too_big},
                ],
            }
        ]
    )
    got = (await user.client.get(f"/api/v1/messages/{message_id}", headers=user.auth)).json()
    files = got["attachments"]
    assert [(f["name"], f["size"], f["contentType"]) for f in files] == [
        ("foto.jpg", len(JPEG), "image/jpeg"),
        ("grande.mp4", settings.mms_attachment_max_bytes + 1, "video/mp4"),
    ]
    assert files[1]["url"] is None  # over the cap: described, not kept
    served = await user.client.get(files[0]["url"], headers=user.auth)
    assert served.status_code == 200 and served.content == JPEG
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["content-disposition"].startswith("attachment")
    assert served.headers["x-content-type-options"] == "nosniff"
    assert (await other.client.get(files[0]["url"], headers=other.auth)).status_code == 404
    async with new_client(app) as anonymous:
        assert (await anonymous.get(files[0]["url"])).status_code == 401
    inbox = (await user.client.get("/api/v1/inbox", headers=user.auth)).json()["data"]
    assert inbox[0]["attachments"][0]["name"] == "foto.jpg"
    # the same message again keeps one copy
    await phone.inbox(
        [
            {
                "phoneNumber": "+5215512345678",
                "type": "mms",
                "id": "mms-9",
                "attachments": [{"contentType": "image/png", "data": "AAAA"}],
            }
        ]
    )
    again = (await user.client.get(f"/api/v1/messages/{message_id}", headers=user.auth)).json()
    assert len(again["attachments"]) == 2
