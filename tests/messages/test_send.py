"""POST /api/v1/send: the newcomer path, every validation rule, and the answer's shape."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.factories import add_device, pair_phone, send

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_newcomer_path_signup_key_send_list_get(client, make_user) -> None:
    user = await make_user()
    resp = await send(user, phoneNumbers=["+5215555555555"], message="Hola mundo")
    assert resp.status_code == 202, resp.text
    sent = resp.json()
    assert re.fullmatch(r"c[0-9a-z]{24}", sent["id"])
    assert sent["state"] == "processing"
    assert sent["priority"] == 0
    assert sent["recipients"][0]["phoneNumber"] == "+5215555555555"
    assert sent["recipients"][0]["state"] == "processing"
    assert ISO_MS.match(sent["createdAt"]) and ISO_MS.match(sent["updatedAt"])
    assert sent["channel"] == "sms" and sent["encoding"] == "GSM-7" and sent["segments"] == 1

    listed = await user.client.get("/api/v1/messages", headers=user.auth)
    assert listed.status_code == 200
    assert [m["id"] for m in listed.json()["data"]] == [sent["id"]]
    assert listed.json()["nextCursor"] is None

    got = await user.client.get(f"/api/v1/messages/{sent['id']}", headers=user.auth)
    assert got.status_code == 200
    detail = got.json()
    assert detail["id"] == sent["id"] and detail["message"] == "Hola mundo"
    assert detail["history"][0]["state"] == "processing"
    assert ISO_MS.match(detail["history"][0]["at"])


async def test_all_seed_fields_are_accepted_and_echoed(make_user, app) -> None:
    user = await make_user()
    device_id = await add_device(app, user.account_id)
    resp = await send(
        user,
        channel="sms",
        phoneNumbers=["+52 55 1234 5678", "5512345678", "+12025550143"],
        message="¿Cómo estás? ñ",
        simNumber=2,
        priority=100,
        ttl=300,
        withDeliveryReport=False,
        isEncrypted=False,
        externalId="order-1",
        deviceId=device_id,
    )
    assert resp.status_code == 202, resp.text
    body = resp.json()
    # duplicates removed after normalization to E.164
    assert [r["phoneNumber"] for r in body["recipients"]] == ["+525512345678", "+12025550143"]
    assert body["priority"] == 100 and body["simNumber"] == 2
    assert body["deviceId"] == device_id and body["externalId"] == "order-1"
    assert body["withDeliveryReport"] is False and body["isEncrypted"] is False
    created = datetime.fromisoformat(body["createdAt"].replace("Z", "+00:00"))
    valid_until = datetime.fromisoformat(body["validUntil"].replace("Z", "+00:00"))
    assert valid_until - created == timedelta(seconds=300)
    # "¿" and "ó" are not GSM-7 basic characters... "¿" is, "ó" is not
    assert body["encoding"] == "UCS-2" and body["segments"] == 1


async def test_valid_until_is_kept(make_user) -> None:
    user = await make_user()
    when = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=123000)
    resp = await send(user, validUntil=when.isoformat().replace("+00:00", "Z"))
    assert resp.status_code == 202, resp.text
    assert resp.json()["validUntil"] == when.strftime("%Y-%m-%dT%H:%M:%S.123Z")


async def test_segments_follow_sms_rules(make_user) -> None:
    user = await make_user()
    cases = [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("€" * 80, "GSM-7", 1),  # extension characters count two septets
        ("€" * 81, "GSM-7", 2),
        ("ó" * 70, "UCS-2", 1),
        ("ó" * 71, "UCS-2", 2),
        ("😀" * 35, "UCS-2", 1),  # two UTF-16 units each
    ]
    for text, encoding, segments in cases:
        body = (await send(user, message=text)).json()
        assert (body["encoding"], body["segments"]) == (encoding, segments), text


async def test_data_and_whatsapp_channels(make_user, app) -> None:
    """(MMS: tests/messages/test_mms.py.)"""
    user = await make_user()
    await add_device(app, user.account_id, kind="whatsapp")  # a line, not yet linked
    data = await send(user, channel="data", message="SGVsbG8=", port=8080)
    assert data.status_code == 202, data.text
    assert data.json()["port"] == 8080 and data.json()["encoding"] is None
    default_port = await send(user, channel="data", message="SGVsbG8=")
    assert default_port.json()["port"] == 53739
    whatsapp = await send(user, channel="whatsapp", message="Hola")
    assert whatsapp.status_code == 202 and whatsapp.json()["channel"] == "whatsapp"
    # each counts as one segment, in the message as in usage
    for answer in (data, whatsapp):
        assert (answer.json()["segments"], answer.json()["encoding"]) == (1, None)
    usage = (await user.client.get("/api/billing", headers=user.auth)).json()["usage"]
    assert usage["segments"] == usage["messages"] == 3, usage


async def test_encrypted_numbers_are_stored_verbatim(make_user) -> None:
    user = await make_user()
    resp = await send(user, isEncrypted=True, phoneNumbers=["b64:QUJDREVGRw=="], message="c2VjcmV0")
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["recipients"][0]["phoneNumber"] == "b64:QUJDREVGRw=="
    assert body["isEncrypted"] is True and body["segments"] == 1  # as billed: the text is unknown


def _future() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()


INVALID: list[tuple[dict[str, Any], str, str]] = [
    (
        {"phoneNumbers": ["+5215555555555", "+52 123"]},
        "invalid_phone_number",
        'phoneNumbers[1]: "+52 123" is not a valid phone number',
    ),
    (
        {"phoneNumbers": ["hello"]},
        "invalid_phone_number",
        'phoneNumbers[0]: "hello" is not a valid phone number',
    ),
    ({"phoneNumbers": []}, "validation_error", "phoneNumbers: must have at least 1 item"),
    (
        {"phoneNumbers": [f"+52155{i:08d}" for i in range(101)]},
        "validation_error",
        "phoneNumbers: must have at most 100 items",
    ),
    ({"phoneNumbers": "+5215555555555"}, "validation_error", "phoneNumbers: must be a list"),
    ({"phoneNumbers": [5215555555555]}, "validation_error", "phoneNumbers[0]: must be a string"),
    ({"message": ""}, "validation_error", "message: is required for sms messages"),
    ({"message": "   "}, "validation_error", "message: is required for sms messages"),
    ({"message": None}, "validation_error", "message: is required for sms messages"),
    ({"message": "x" * 1601}, "validation_error", "message: at most 1600 characters for sms"),
    ({"channel": "fax"}, "validation_error", "channel: must be one of"),
    (
        {"channel": "whatsapp", "message": ""},
        "validation_error",
        "message: is required for whatsapp messages",
    ),
    (
        {"channel": "mms", "mediaUrls": None},
        "validation_error",
        "mediaUrls: an mms message needs at least one media URL",
    ),
    (
        {"channel": "mms", "mediaUrls": ["http://example.com/a.jpg"]},
        "validation_error",
        'mediaUrls[0]: "http://example.com/a.jpg" is not an https URL',
    ),
    (
        {"channel": "mms", "mediaUrls": ["https://example.com/a.jpg"] * 11},
        "validation_error",
        "mediaUrls: at most 10 URLs",
    ),
    (
        {"mediaUrls": ["https://example.com/a.jpg"]},
        "validation_error",
        'mediaUrls: only the "mms" and "whatsapp" channels carry media, not "sms"',
    ),
    (
        {"channel": "data", "message": "not base64!"},
        "validation_error",
        "message: is not valid base64",
    ),
    (
        {"channel": "data", "message": "QUJD", "port": 0},
        "validation_error",
        "port: must be greater than or equal to 1",
    ),
    (
        {"channel": "data", "message": "QUJD", "port": 70000},
        "validation_error",
        "port: must be less than or equal to 65535",
    ),
    ({"port": 80}, "validation_error", 'port: only "data" messages have a port'),
    ({"simNumber": 0}, "validation_error", "simNumber: must be greater than or equal to 1"),
    ({"simNumber": 4}, "validation_error", "simNumber: must be less than or equal to 3"),
    ({"priority": 128}, "validation_error", "priority: must be less than or equal to 127"),
    ({"priority": -129}, "validation_error", "priority: must be greater than or equal to -128"),
    ({"priority": "high"}, "validation_error", "priority: must be an integer"),
    ({"ttl": 0}, "validation_error", "ttl: must be greater than 0"),
    ({"ttl": -5}, "validation_error", "ttl: must be greater than 0"),
    (
        {"ttl": 60, "validUntil": "2099-01-01T00:00:00Z"},
        "validation_error",
        "ttl and validUntil cannot be used together",
    ),
    (
        {"validUntil": "2020-01-01T00:00:00Z"},
        "validation_error",
        "validUntil: 2020-01-01T00:00:00.000Z is in the past",
    ),
    ({"validUntil": "2099-01-01T00:00:00"}, "validation_error", "validUntil: needs a time zone"),
    ({"validUntil": "tomorrow"}, "validation_error", "validUntil: must be an ISO-8601 date"),
    (
        {"withDeliveryReport": "yes"},
        "validation_error",
        "withDeliveryReport: must be true or false",
    ),
    ({"externalId": ""}, "validation_error", "externalId: must have at least 1 character"),
    ({"externalId": "x" * 256}, "validation_error", "externalId: must have at most 255 characters"),
    ({"phoneNumber": "+5215555555555"}, "validation_error", "phoneNumber: is not a known field"),
]


@pytest.mark.parametrize(("patch", "code", "text"), INVALID)
async def test_invalid_sends_are_400_naming_the_field_and_store_nothing(
    make_user, patch: dict[str, Any], code: str, text: str
) -> None:
    user = await make_user()
    resp = await send(user, **patch)
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["code"] == code
    assert body["error"].startswith(text), body["error"]
    listed = await user.client.get("/api/v1/messages", headers=user.auth)
    assert listed.json()["data"] == []


async def test_missing_and_malformed_bodies(make_user) -> None:
    user = await make_user()
    no_numbers = await user.client.post("/api/v1/send", json={"message": "x"}, headers=user.auth)
    assert no_numbers.status_code == 400
    assert no_numbers.json()["error"] == "phoneNumbers: is required"
    not_json = await user.client.post(
        "/api/v1/send",
        content=b"{not json",
        headers={**user.auth, "Content-Type": "application/json"},
    )
    assert not_json.status_code == 400
    assert not_json.json() == {
        "error": "request body is not valid JSON",
        "code": "validation_error",
    }
    array = await user.client.post("/api/v1/send", json=[1, 2], headers=user.auth)
    assert array.status_code == 400 and array.json()["code"] == "validation_error"
    empty = await user.client.post("/api/v1/send", headers=user.auth)
    assert empty.status_code == 400
    assert empty.json() == {"error": "request body is required", "code": "validation_error"}
    # curl -d without -H sends a form content type: say what to fix
    form = await user.client.post(
        "/api/v1/send",
        content=b'{"phoneNumbers": ["+5215512345678"], "message": "x"}',
        headers={**user.auth, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 400
    assert form.json()["error"] == (
        "request body must be JSON: send it with Content-Type: application/json"
    )
    charset = await user.client.post(
        "/api/v1/send",
        content=b'{"phoneNumbers": ["+5215512345678"], "message": "x"}',
        headers={**user.auth, "Content-Type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 202, charset.text
    # the credential is checked before the body (this client's cookie lacks its CSRF header)
    no_csrf = await user.client.post("/api/v1/send", content=b"{not json")
    assert no_csrf.status_code == 403 and no_csrf.json()["code"] == "csrf_failed"
    listed = await user.client.get("/api/v1/messages", headers=user.auth)
    assert len(listed.json()["data"]) == 1


async def test_send_body_is_described_in_openapi(make_user) -> None:
    user = await make_user()
    spec = (await user.client.get("/openapi.json")).json()
    body = spec["paths"]["/api/v1/send"]["post"]["requestBody"]["content"]["application/json"]
    properties = body["schema"]["properties"]
    assert {"phoneNumbers", "message", "externalId", "template"} <= set(properties)
    assert "$ref" not in str(body)  # nested models are inlined: no dangling references
    assert properties["template"]["anyOf"][0]["properties"]["language"]["type"] == "string"


async def test_foreign_or_unknown_device_is_404(make_user, app) -> None:
    owner, other = await make_user(), await make_user()
    device_id = await add_device(app, owner.account_id)
    for value in (device_id, "cnotarealdevice0000000000", "garbage"):
        resp = await send(other, deviceId=value)
        assert resp.status_code == 404, resp.text
        assert resp.json() == {
            "error": "device not found",
            "code": "not_found",
            "field": "deviceId",
        }
    assert (await other.client.get("/api/v1/messages", headers=other.auth)).json()["data"] == []


async def test_a_device_deleted_after_a_send_checked_it_is_404(make_user, app) -> None:
    """The server remembers a device's type after a send checks it; a device deleted where
    this process does not see it (another server process) is refused by the database."""
    from sqlalchemy import delete

    from smsgate.devices.models import Device

    user = await make_user()
    device_id = await add_device(app, user.account_id)
    assert (await send(user, deviceId=device_id)).status_code == 202
    async with app.state.db.transaction() as session:
        await session.execute(delete(Device).where(Device.id == device_id))
    again = await send(user, deviceId=device_id, message="after the deletion")
    assert again.status_code == 404, again.text
    assert again.json() == {"error": "device not found", "code": "not_found", "field": "deviceId"}
    listed = (await user.client.get("/api/v1/messages", headers=user.auth)).json()["data"]
    assert "after the deletion" not in [m["message"] for m in listed]


async def test_stored_message_reads_back_exactly_as_answered(make_user, app) -> None:
    """What the send path writes (batched, on its own connection) reads back unchanged."""
    user = await make_user()
    device_id = await add_device(app, user.account_id, kind="whatsapp")
    when = (datetime.now(UTC) + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S.250Z")
    answers = [
        await send(
            user,
            channel="whatsapp",
            message="¡Mira! 😀",
            mediaUrls=["https://example.com/a.jpg", "https://example.com/b.png"],
            validUntil=when,
            withDeliveryReport=False,
            simNumber=3,
            priority=-128,
            deviceId=device_id,
            externalId="round-trip",
        ),
        await send(user, channel="data", message="AAEC", port=9200, isEncrypted=False),
        await send(user, phoneNumbers=["+5215555555555", "+12025550143"], ttl=60),
    ]
    for resp in answers:
        assert resp.status_code == 202, resp.text
        answered = resp.json()
        got = (
            await user.client.get(f"/api/v1/messages/{answered['id']}", headers=user.auth)
        ).json()
        got.pop("history")
        assert got == answered


async def test_the_lean_send_route_answers_like_every_route(client, make_user, monkeypatch) -> None:
    """POST /api/v1/send skips FastAPI's per-request machinery (kit/responses.serve_lean): its
    refusals and its failures still go through the app's handlers and middleware."""
    from smsgate.messages import service

    user = await make_user()
    body = {"phoneNumbers": ["+5215555555555"], "message": "Hola"}
    anonymous = await client.post("/api/v1/send", json=body)
    assert anonymous.status_code == 401 and set(anonymous.json()) == {"error", "code"}
    assert anonymous.headers["x-request-id"]
    malformed = await client.post(
        "/api/v1/send", content=b"{", headers={**user.auth, "content-type": "application/json"}
    )
    assert malformed.status_code == 400 and malformed.json()["code"] == "validation_error"

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret detail of a bug")

    monkeypatch.setattr(service, "store_message", broken)
    failed = await client.post(  # this client's transport answers the app's failures
        "/api/v1/send", json=body, headers={**user.auth, "X-Request-ID": "lean-1"}
    )
    assert failed.status_code == 500
    assert failed.json() == {"error": "internal error", "code": "internal_error"}
    assert failed.headers["x-request-id"] == "lean-1"
    assert "secret detail" not in failed.text


async def test_a_message_shows_the_phone_that_took_it(make_user) -> None:
    """Sent without deviceId, a message said deviceId null for ever, even once delivered."""
    user = await make_user()
    phone = await pair_phone(user)
    sent = (await send(user)).json()
    assert sent["deviceId"] is None  # queued: no phone has it yet
    [item] = await phone.pull()
    await phone.report(item["id"], "Sent", [("+5215555555555", "Sent", None)])
    shown = await user.client.get(f"/api/v1/messages/{sent['id']}", headers=user.auth)
    assert (shown.json()["state"], shown.json()["deviceId"]) == ("sent", phone.device_id)


async def test_a_received_message_has_no_outbound_fields(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    await phone.inbox([{"phoneNumber": "+5215512345678", "message": "Hola", "id": "in-1"}])
    [received] = (await user.client.get("/api/v1/messages?direction=in", headers=user.auth)).json()[
        "data"
    ]
    assert received["sender"] == "+5215512345678" and received["deviceId"] == phone.device_id
    for outbound_only in ("priority", "withDeliveryReport", "externalId"):
        assert outbound_only not in received
    shown = await user.client.get(f"/api/v1/messages/{received['id']}", headers=user.auth)
    assert "externalId" not in shown.json() and "priority" not in shown.json()
