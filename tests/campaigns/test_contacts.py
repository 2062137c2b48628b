"""Contacts: one per subscriber, imported from the spreadsheets people have (Excel's CSV with
semicolons and Windows-1252, or an XLSX), their opt-out read from the list, their name on the
conversation, and a tag of them as a campaign's recipients."""

from __future__ import annotations

import io

from openpyxl import Workbook

from smsgate.kit import sheets
from tests.factories import pair_phone


def _xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_spreadsheets_as_people_save_them() -> None:
    excel_csv = "teléfono;Nombre;Ciudad\r\n5512345678;José Pérez;Mérida\r\n\r\n;;\r\n".encode(
        "cp1252"
    )
    read = sheets.read_csv(excel_csv)
    assert read.columns == ("teléfono", "Nombre", "Ciudad")
    assert read.rows == (
        (2, {"teléfono": "5512345678", "Nombre": "José Pérez", "Ciudad": "Mérida"}),
    )
    assert read.key(sheets.PHONE_COLUMNS) == "teléfono"
    book = _xlsx(
        [["phoneNumber", "nombre"], [5512345678, "Ana"], [None, None], ["+525587654321", "Luis"]]
    )
    read = sheets.read_file("agenda.xlsx", "", book)
    assert read.rows == (
        (2, {"phoneNumber": "5512345678", "nombre": "Ana"}),
        (4, {"phoneNumber": "+525587654321", "nombre": "Luis"}),
    )
    assert sheets.render("Hola {Nombre}", {"nombre": "Ana"}) == "Hola Ana"
    assert sheets.variables("{a} y {b} y {a}") == ["a", "b"]


async def test_contacts_one_per_subscriber_with_opt_out_read_from_the_list(make_user) -> None:
    user = await make_user()
    made = await user.client.post(
        "/api/contacts",
        json={"name": "Ana", "phoneNumber": "+5215512345678", "tags": ["vip", " vip "]},
        headers=user.auth,
    )
    assert made.status_code == 201, made.text
    ana = made.json()
    assert (ana["phoneNumber"], ana["tags"], ana["optedOut"]) == ("+5215512345678", ["vip"], False)
    twin = await user.client.post(
        "/api/contacts", json={"phoneNumber": "+525512345678"}, headers=user.auth
    )
    assert twin.status_code == 409 and twin.json()["contactId"] == ana["id"]
    await user.client.post(
        "/api/opt-outs", json={"phoneNumber": "+525512345678"}, headers=user.auth
    )
    shown = await user.client.get(f"/api/contacts/{ana['id']}", headers=user.auth)
    assert shown.json()["optedOut"] is True
    bad = await user.client.post("/api/contacts", json={"phoneNumber": "abc"}, headers=user.auth)
    assert bad.status_code == 400 and bad.json()["field"] == "phoneNumber"


async def test_import_previews_then_adds_and_updates(make_user) -> None:
    user = await make_user()
    await user.client.post(
        "/api/contacts", json={"phoneNumber": "+525511111111", "name": "Viejo"}, headers=user.auth
    )
    data = (
        b"phoneNumber,nombre,tags,ciudad\n"
        b"+5215511111111,Ana,pacientes,CDMX\n"
        b"+525522222222,Luis,pacientes;vip,Puebla\n"
        b"no,Nadie,,\n"
        b"+525522222222,Otra vez,,\n"
    )
    files = {"file": ("contactos.csv", data, "text/csv")}
    dry = await user.client.post(
        "/api/contacts/import", data={"dryRun": "true"}, files=files, headers=user.auth
    )
    assert dry.status_code == 200, dry.text
    preview = dry.json()
    assert (preview["created"], preview["updated"], preview["dryRun"]) == (1, 1, True)
    assert preview["rejected"] == [
        {"row": 4, "phoneNumber": "no", "reason": "invalid_phone_number"},
        {"row": 5, "phoneNumber": "+525522222222", "reason": "duplicate"},
    ]
    assert preview["preview"][1]["fields"] == {"ciudad": "Puebla"}
    listed = await user.client.get("/api/contacts", headers=user.auth)
    assert len(listed.json()["data"]) == 1  # a dry run changes nothing
    done = await user.client.post("/api/contacts/import", files=files, headers=user.auth)
    assert done.json()["created"] == 1
    tagged = await user.client.get("/api/contacts?tag=pacientes", headers=user.auth)
    people = {c["name"]: c for c in tagged.json()["data"]}
    assert set(people) == {"Ana", "Luis"}
    assert people["Ana"]["phoneNumber"] == "+525511111111"  # as first written
    assert people["Luis"]["tags"] == ["pacientes", "vip"]


async def test_a_tag_is_a_campaign_s_recipients_and_a_thread_shows_the_contact_s_name(
    make_user,
) -> None:
    user = await make_user()
    phone = await pair_phone(user)
    for number, name in (("+525511111111", "Ana"), ("+525533333333", "Luis")):
        await user.client.post(
            "/api/contacts",
            json={
                "phoneNumber": number,
                "name": name,
                "tags": ["clientes"],
                "fields": {"saldo": "120"},
            },
            headers=user.auth,
        )
    created = await user.client.post(
        "/api/campaigns",
        json={"name": "Saldos", "message": "{name}, su saldo es {saldo}", "tag": "clientes"},
        headers=user.auth,
    )
    assert created.status_code == 201, created.text
    taken = await phone.pull()
    assert sorted(m["textMessage"]["text"] for m in taken) == [
        "Ana, su saldo es 120",
        "Luis, su saldo es 120",
    ]
    await phone.inbox([{"phoneNumber": "+5215511111111", "message": "Gracias", "id": "r1"}])
    threads = (await user.client.get("/api/conversations", headers=user.auth)).json()["data"]
    names = {t["contact"]: (t["contactName"], t["unreadCount"]) for t in threads}
    assert names == {"+525511111111": ("Ana", 1), "+525533333333": ("Luis", 0)}
