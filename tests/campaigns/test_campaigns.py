"""Campaigns: a spreadsheet's rows become messages through the one send path, each row with its
variables; every row not sent is reported with its row number and reason; a simulated phone
takes them to done; cancel stops the rest; the same file uploaded again sends nothing twice."""

from __future__ import annotations

import csv
import io
import json
import random

from smsgate.kit import phones
from smsgate.worker.jobs import run_jobs
from tests.factories import pair_phone
from tests.webhooks.receiver import receiving
from tests.webhooks.test_delivery import deliver

TEXT = "Hola {nombre}, tu cita es el {fecha} a las {hora}"
ONE = [{"phoneNumber": "+525512345678"}]


def _numbers(count: int, seed: int) -> list[str]:
    """Mexican mobiles, distinct and far apart (the pumping guard refuses runs of neighbours)."""
    pick = random.Random(seed)
    out: set[str] = set()
    while len(out) < count:
        out.add(f"+52155{pick.randrange(10_000_000, 99_999_999)}")
    return sorted(out)


def _agenda(numbers: list[str]) -> tuple[bytes, dict[str, int]]:
    """A 50-row agenda (header + rows 2..51) with one invalid number, one opted-out number, one
    duplicate and one row missing its hour; `special` names their row numbers."""
    out = io.StringIO()
    sheet = csv.writer(out)
    sheet.writerow(["phoneNumber", "nombre", "fecha", "hora"])
    rows = [
        [n, f"Paciente {i}", "8 de diciembre", f"{9 + i % 8}:00"] for i, n in enumerate(numbers)
    ]
    rows[4][0] = "12345"  # row 6: not a number
    rows[20][0] = rows[10][0]  # row 22: the same person as row 12
    rows[30][3] = ""  # row 32: no hour
    for row in rows:
        sheet.writerow(row)
    return out.getvalue().encode(), {"invalid": 6, "duplicate": 22, "missing": 32, "opted": 41}


async def _upload(user, data: bytes, name: str = "Citas del lunes", **fields):
    form = {"name": name, "message": TEXT, **fields}
    files = {"file": ("agenda.csv", data, "text/csv")}
    return await user.client.post("/api/campaigns", data=form, files=files, headers=user.auth)


async def _deliver_all(phone) -> list[dict]:
    """The phone takes everything queued for it and reports each delivered."""
    taken: list[dict] = []
    while batch := await phone.pull():
        for message in batch:
            numbers = message["phoneNumbers"]
            await phone.report(
                message["id"], "Delivered", [(n, "Delivered", None) for n in numbers]
            )
        taken += batch
    return taken


async def test_a_50_row_agenda_reports_every_row_it_does_not_send_and_finishes(
    make_user, app
) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    numbers = _numbers(50, 1)
    data, special = _agenda(numbers)
    # row 41's patient opted out, from the other spelling of the number (+52 55… for +52 1 55…)
    opted = numbers[special["opted"] - 2]
    other = "+52" + opted[4:]
    assert phones.subscriber(other) == phones.subscriber(opted) and other != opted
    stop = await user.client.post("/api/opt-outs", json={"phoneNumber": other}, headers=user.auth)
    assert stop.status_code == 201, stop.text
    async with receiving() as receiver:
        hook = await user.client.post(
            "/api/webhooks",
            json={"url": receiver.url, "events": ["campaign:finished"]},
            headers=user.auth,
        )
        assert hook.status_code == 201, hook.text

        created = await _upload(user, data)
        assert created.status_code == 201, created.text
        campaign = created.json()
        assert campaign["state"] == "sending"
        assert (campaign["total"], campaign["accepted"]) == (50, 46)
        assert campaign["rejected"] == [
            {"row": 6, "phoneNumber": "12345", "reason": "invalid_phone_number"},
            {"row": 22, "phoneNumber": numbers[10], "reason": "duplicate"},
            {"row": 32, "phoneNumber": numbers[30], "reason": "missing_variable"},
            {"row": 41, "phoneNumber": opted, "reason": "opted_out"},
        ]
        assert campaign["counts"] == {"processing": 46}

        taken = await _deliver_all(phone)
        assert len(taken) == 46
        texts = {m["phoneNumbers"][0]: m["textMessage"]["text"] for m in taken}
        assert texts[numbers[0]] == "Hola Paciente 0, tu cita es el 8 de diciembre a las 9:00"
        assert texts[numbers[49]] == "Hola Paciente 49, tu cita es el 8 de diciembre a las 10:00"
        assert opted not in texts and "12345" not in texts and numbers[30] not in texts
        # interactive sends are taken before a campaign's: the campaign's priority is lower
        assert {m["priority"] for m in taken} == {-10}

        await run_jobs(app)
        done = (await user.client.get(f"/api/campaigns/{campaign['id']}", headers=user.auth)).json()
        assert done["state"] == "done" and done["finishedAt"] is not None
        assert done["counts"] == {"delivered": 46}
        await deliver(app)
        finished = [json.loads(r.body) for r in receiver.requests]
        assert [f["event"] for f in finished] == ["campaign:finished"]
        payload = finished[0]["payload"]
        assert payload["campaignId"] == campaign["id"]
        assert (payload["state"], payload["accepted"], payload["rejected"]) == ("done", 46, 4)
        assert payload["counts"] == {"delivered": 46}

    # every message carries its campaign
    listed = await user.client.get("/api/v1/messages?limit=100", headers=user.auth)
    assert {m.get("campaignId") for m in listed.json()["data"]} == {campaign["id"]}

    # the report: every recipient with its times, then the rejected rows
    report = await user.client.get(f"/api/campaigns/{campaign['id']}/report", headers=user.auth)
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert len(lines) == 50
    sent = [line for line in lines if line["state"] == "delivered"]
    assert len(sent) == 46 and all(line["deliveredAt"] for line in sent)
    assert {line["name"] for line in sent} >= {"Paciente 0", "Paciente 49"}
    assert [(line["row"], line["error"]) for line in lines if line["state"] == "rejected"] == [
        ("6", "invalid_phone_number"),
        ("22", "duplicate"),
        ("32", "missing_variable"),
        ("41", "opted_out"),
    ]


async def test_the_same_file_uploaded_again_sends_nothing_twice(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    data, _ = _agenda(_numbers(50, 2))
    campaign = (await _upload(user, data)).json()
    assert campaign["accepted"] == 47  # no opt-out here: 50 less the invalid, duplicate, missing
    again = await user.client.post(
        f"/api/campaigns/{campaign['id']}/recipients",
        files={"file": ("agenda.csv", data, "text/csv")},
        headers=user.auth,
    )
    assert again.status_code == 200, again.text
    body = again.json()
    assert (body["total"], body["accepted"]) == (100, 47)
    assert body["counts"] == {"processing": 47}
    reasons = [r["reason"] for r in body["rejected"][3:]]  # the second upload's rows
    assert reasons.count("duplicate") == 48 and len(reasons) == 50
    assert len(await _deliver_all(phone)) == 47


async def test_cancel_stops_what_no_phone_has_taken(make_user, app) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    rows = [{"phoneNumber": n, "nombre": "Ana"} for n in _numbers(150, 3)]
    created = await user.client.post(
        "/api/campaigns",
        json={"name": "Promo", "message": "Hola {nombre}", "recipients": rows},
        headers=user.auth,
    )
    assert created.status_code == 201, created.text
    campaign = created.json()
    first = await phone.pull()  # the phone takes a first batch (at most 100)
    assert 0 < len(first) < 150
    cancelled = await user.client.post(f"/api/campaigns/{campaign['id']}/cancel", headers=user.auth)
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["state"] == "cancelled"
    assert body["counts"] == {"processing": len(first), "cancelled": 150 - len(first)}
    assert await phone.pull() == first  # what it holds goes on; nothing new is handed out
    for message in first:
        number = message["phoneNumbers"][0]
        await phone.report(message["id"], "Sent", [(number, "Sent", None)])
    await run_jobs(app)
    after = (await user.client.get(f"/api/campaigns/{campaign['id']}", headers=user.auth)).json()
    assert after["state"] == "cancelled"
    assert after["counts"] == {"sent": len(first), "cancelled": 150 - len(first)}
    again = await user.client.post(f"/api/campaigns/{campaign['id']}/cancel", headers=user.auth)
    assert again.status_code == 409 and again.json()["code"] == "not_cancellable"


async def test_single_sends_go_before_a_waiting_campaign(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    rows = [{"phoneNumber": n} for n in _numbers(120, 4)]
    created = await user.client.post(
        "/api/campaigns",
        json={"name": "Aviso", "message": "Cerrado hoy", "recipients": rows},
        headers=user.auth,
    )
    assert created.status_code == 201, created.text
    single = await user.client.post(
        "/api/v1/send",
        json={"phoneNumbers": ["+525587654321"], "message": "Su pedido está listo"},
        headers=user.auth,
    )
    assert single.status_code == 202
    first = await phone.pull()
    assert first[0]["id"] == single.json()["id"]  # sent after 120 campaign messages, taken first


async def test_bad_campaigns_are_refused_with_their_field_and_store_nothing(make_user) -> None:
    user = await make_user()
    post = user.client.post
    cases = [
        ({"name": "x", "message": "hola"}, 400, "recipients"),
        ({"name": "x", "recipients": [{"phoneNumber": "+525512345678"}]}, 400, "message"),
        (
            {
                "name": "x",
                "message": "Hola {nombre}",
                "recipients": [{"phoneNumber": "+525512345678"}],
            },
            422,
            "message",
        ),
        ({"name": "x", "message": "hola", "recipients": [{"telefono_no": "1"}]}, 422, "file"),
        ({"name": "x", "message": "hola", "templateId": "nope", "recipients": ONE}, 400, "message"),
        (
            {"name": "x", "templateId": "c00000000000000000000000", "recipients": ONE},
            404,
            "templateId",
        ),
        ({"name": "x", "message": "hola", "tag": "nadie"}, 422, "tag"),
        (
            {
                "name": "x",
                "message": "hola",
                "recipients": [{"phoneNumber": "+525512345678"}],
                "scheduleAt": "2020-01-01T09:00:00",
            },
            400,
            "scheduleAt",
        ),
    ]
    for body, status, field in cases:
        answer = await post("/api/campaigns", json=body, headers=user.auth)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json().get("field") == field, (body, answer.text)
    # a file that is not a spreadsheet, and a form without a file
    files = {"file": ("a.xlsx", b"PK\x03\x04 not a workbook", "application/octet-stream")}
    broken = await post(
        "/api/campaigns", data={"name": "x", "message": "hola"}, files=files, headers=user.auth
    )
    assert broken.status_code == 400 and broken.json()["code"] == "invalid_file"
    for data, name in ((b"\x89PNG\r\n\x1a\n\x00\x00", "foto.png"), (b"", "vacio.csv")):
        refused = await post(
            "/api/campaigns",
            data={"name": "x", "message": "hola"},
            files={"file": (name, data, "text/csv")},
            headers=user.auth,
        )
        assert refused.status_code == 400 and refused.json()["field"] == "file", refused.text
    empty = {"name": "x", "message": "hola", "recipients": []}
    answer = await post("/api/campaigns", json=empty, headers=user.auth)
    assert answer.status_code == 400 and answer.json()["field"] == "recipients"
    rows = [{"phoneNumber": "+525512345678"}]
    unknown = {"name": "x", "message": "hola", "recipients": rows, "deviceIds": ["nope"]}
    answer = await post("/api/campaigns", json=unknown, headers=user.auth)
    assert answer.status_code == 404 and answer.json()["field"] == "deviceIds"
    listed = await user.client.get("/api/campaigns", headers=user.auth)
    assert listed.json()["data"] == []
    # in the caller's language
    spanish = {**user.auth, "Accept-Language": "es-MX"}
    answer = await post("/api/campaigns", json=cases[0][0], headers=spanish)
    assert answer.json()["code"] == "validation_error"
    assert (
        answer.json()["error"]
        != (await post("/api/campaigns", json=cases[0][0], headers=user.auth)).json()["error"]
    )


async def test_a_scheduled_campaign_waits_in_the_account_s_time_zone(make_user) -> None:
    user = await make_user()
    await user.client.patch(
        "/api/account/settings", json={"timeZone": "America/Mexico_City"}, headers=user.auth
    )
    phone = await pair_phone(user)
    created = await user.client.post(
        "/api/campaigns",
        json={
            "name": "Mañana",
            "message": "Recordatorio",
            "recipients": [{"phoneNumber": "+525512345678"}],
            "scheduleAt": "2099-03-01T09:00:00",
        },
        headers=user.auth,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["state"] == "scheduled"
    assert body["scheduleAt"] == "2099-03-01T15:00:00.000Z"  # 09:00 in Mexico City
    assert await phone.pull() == []


async def test_a_template_campaign_and_its_preview(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    made = await user.client.post(
        "/api/templates", json={"name": "Cita", "message": TEXT}, headers=user.auth
    )
    assert made.status_code == 201, made.text
    template = made.json()
    assert template["variables"] == ["nombre", "fecha", "hora"]
    preview = await user.client.post(
        f"/api/templates/{template['id']}/preview",
        json={
            "rows": [
                {"nombre": "Ana", "fecha": "lunes", "hora": "10:00"},
                {"nombre": "Zoë 😀", "fecha": "lunes", "hora": "10:00"},
                {"nombre": "Luis"},
            ]
        },
        headers=user.auth,
    )
    rows = preview.json()["data"]
    assert (rows[0]["encoding"], rows[0]["segments"]) == ("GSM-7", 1)
    assert rows[1]["encoding"] == "UCS-2"  # a name can turn the text into UCS-2
    assert rows[2]["message"] is None and rows[2]["missing"] == ["fecha", "hora"]
    created = await user.client.post(
        "/api/campaigns",
        json={
            "name": "Lunes",
            "templateId": template["id"],
            "recipients": [
                {"phoneNumber": "+525512345678", "nombre": "Ana", "fecha": 8, "hora": "9"}
            ],
        },
        headers=user.auth,
    )
    assert created.status_code == 201, created.text
    [message] = await phone.pull()
    assert message["textMessage"]["text"] == "Hola Ana, tu cita es el 8 a las 9"


async def test_a_draft_previews_its_rows_and_sends_only_when_told(make_user) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    data, _ = _agenda(_numbers(50, 5))
    made = await _upload(user, data, draft="true")
    assert made.status_code == 201, made.text
    draft = made.json()
    assert (draft["state"], draft["total"], draft["accepted"]) == ("draft", 50, 0)
    preview = draft["preview"]
    assert [r["row"] for r in preview["rows"]] == [2, 3, 4]
    assert preview["rows"][0]["message"].startswith("Hola Paciente 0, tu cita es el 8 de")
    assert (preview["messages"], preview["segments"]) == (49, 49)  # row 32 misses its hour
    assert await phone.pull() == []  # nothing sent yet
    more = await user.client.post(
        f"/api/campaigns/{draft['id']}/recipients",
        json={"recipients": [{"phoneNumber": "+525512345678"}]},
        headers=user.auth,
    )
    assert more.status_code == 409 and more.json()["code"] == "not_sent"
    sent = await user.client.post(f"/api/campaigns/{draft['id']}/send", headers=user.auth)
    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert (body["state"], body["total"], body["accepted"]) == ("sending", 50, 47)
    assert "preview" not in body
    assert len(await _deliver_all(phone)) == 47
    again = await user.client.post(f"/api/campaigns/{draft['id']}/send", headers=user.auth)
    assert again.status_code == 409 and again.json()["code"] == "not_a_draft"
    # a draft cancelled sends nothing, ever
    other = (await _upload(user, data, name="otra", draft="true")).json()
    gone = await user.client.post(f"/api/campaigns/{other['id']}/cancel", headers=user.auth)
    assert gone.json()["state"] == "cancelled"
    refused = await user.client.post(f"/api/campaigns/{other['id']}/send", headers=user.auth)
    assert refused.status_code == 409
    assert await phone.pull() == []


async def test_a_draft_whose_number_column_has_another_name_is_mapped_when_sent(
    make_user,
) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    sheet = b"Cel del cliente,nombre\n5511112222,Ana\n5533334444,Luis\n"
    form = {"name": "Avisos", "message": "Hola {nombre}", "draft": "true"}
    files = {"file": ("avisos.csv", sheet, "text/csv")}
    refused = await user.client.post(
        "/api/campaigns", data={**form, "draft": "false"}, files=files, headers=user.auth
    )
    assert refused.status_code == 422 and refused.json()["code"] == "missing_phone_column"
    made = await user.client.post("/api/campaigns", data=form, files=files, headers=user.auth)
    assert made.status_code == 201, made.text
    draft = made.json()
    assert draft["preview"]["phoneColumn"] is None
    assert draft["preview"]["columns"] == ["Cel del cliente", "nombre"]
    url = f"/api/campaigns/{draft['id']}/send"
    unmapped = await user.client.post(url, json={}, headers=user.auth)
    assert unmapped.status_code == 422 and unmapped.json()["code"] == "missing_phone_column"
    wrong = await user.client.post(url, json={"phoneColumn": "celular"}, headers=user.auth)
    assert wrong.status_code == 400 and wrong.json()["field"] == "phoneColumn"
    sent = await user.client.post(url, json={"phoneColumn": "Cel del cliente"}, headers=user.auth)
    assert sent.status_code == 200, sent.text
    assert sent.json()["accepted"] == 2
    taken = await phone.pull()
    assert sorted(m["phoneNumbers"][0] for m in taken) == ["+525511112222", "+525533334444"]
