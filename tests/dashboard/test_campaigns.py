"""The campaign wizard on the dashboard, as a shop owner meets it: upload the agenda, read the
preview and what it costs against the plan, send it (now or at a local time), watch its
progress, see every row that was not sent and why, download the report."""

from __future__ import annotations

from tests.dashboard.words import visible_text
from tests.factories import pair_phone, signup

AGENDA = (
    "teléfono;nombre;hora\r\n"
    "5511112222;Ana;10:00\r\n"
    "5533334444;Luis;11:30\r\n"
    "12;Nadie;12:00\r\n"
    "5555556666;Eva;\r\n"
).encode("cp1252")  # Excel's CSV in Spanish: semicolons, Windows-1252


async def test_upload_preview_send_and_follow_a_campaign(app) -> None:
    user = await signup(app)
    phone = await pair_phone(user, name="Mostrador")
    http = user.client
    form = {"csrf": user.csrf, "name": "Citas del lunes", "message": "Hola {nombre}, a las {hora}"}
    uploaded = await http.post(
        "/dashboard/campaigns", data=form, files={"file": ("agenda.csv", AGENDA, "text/csv")}
    )
    assert uploaded.status_code == 303, uploaded.text
    page = uploaded.headers["location"]
    draft = visible_text((await http.get(page, params={"lang": "es"})).text)
    assert "Hola Ana, a las 10:00" in draft and "Hola Luis, a las 11:30" in draft
    assert "borrador" in draft and "Partes de SMS" in draft
    assert await phone.pull() == []  # a draft sends nothing

    sent = await http.post(f"{page}/send", data={"csrf": user.csrf, "device": phone.device_id})
    assert sent.status_code == 303, sent.text
    taken = await phone.pull()
    assert sorted(m["textMessage"]["text"] for m in taken) == [
        "Hola Ana, a las 10:00",
        "Hola Luis, a las 11:30",
    ]
    for message in taken:
        number = message["phoneNumbers"][0]
        await phone.report(message["id"], "Delivered", [(number, "Delivered", None)])
    shown = visible_text((await http.get(page, params={"lang": "es"})).text)
    assert "Filas no enviadas (2)" in shown
    assert "número no válido" in shown and "falta una variable" in shown
    progress = await http.get(f"{page}/progress", params={"lang": "es"})
    assert "entregado: 2" in visible_text(progress.text)
    listed = visible_text((await http.get("/dashboard/campaigns", params={"lang": "es"})).text)
    assert "Citas del lunes" in listed and "2 / 2" in listed
    report = await http.get(f"{page}/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    assert report.content.decode("utf-8-sig").count("\n") == 5  # header, 2 sent, 2 rejected


async def test_a_bad_upload_is_told_on_the_form_with_what_was_typed(app) -> None:
    user = await signup(app)
    form = {"csrf": user.csrf, "name": "Promo", "message": "Hola {nombre}"}
    files = {"file": ("lista.csv", b"telefono\n5511112222\n", "text/csv")}
    answer = await user.client.post(
        "/dashboard/campaigns", data=form, files=files, params={"lang": "es"}
    )
    assert answer.status_code == 400
    text = visible_text(answer.text)
    assert "usa {nombre}, que ninguna columna de las filas tiene" in text
    assert 'value="Promo"' in answer.text  # the name typed is kept
    forged = await user.client.post("/dashboard/campaigns", data={**form, "csrf": "x"}, files=files)
    assert forged.status_code == 403


async def test_contacts_import_and_templates_from_the_dashboard(app) -> None:
    user = await signup(app)
    http = user.client
    sheet = b"celular,nombre,ciudad\n5511112222,Ana,CDMX\nnada,Luis,\n"
    files = {"file": ("contactos.csv", sheet, "text/csv")}
    form = {"csrf": user.csrf, "tags": "pacientes", "dryRun": "true"}
    preview = await http.post(
        "/dashboard/contacts/import", data=form, files=files, params={"lang": "es"}
    )
    text = visible_text(preview.text)
    assert "Vista previa (no se guardó nada)" in text and "número no válido" in text
    assert "Aún no hay contactos" in text  # a preview saves nothing
    del form["dryRun"]
    done = await http.post("/dashboard/contacts/import", data=form, files=files)
    assert done.status_code == 200
    listed = visible_text((await http.get("/dashboard/contacts?tag=pacientes&lang=es")).text)
    assert "Ana" in listed and "5511112222" in listed
    made = await http.post(
        "/dashboard/templates",
        data={"csrf": user.csrf, "name": "Cita", "message": "Hola {nombre} de {ciudad}"},
    )
    assert made.status_code == 303
    page = visible_text((await http.get("/dashboard/templates?lang=es")).text)
    assert "Hola {nombre} de {ciudad}" in page and "nombre, ciudad" in page
    empty = await http.post(
        "/dashboard/templates",
        data={"csrf": user.csrf, "name": "x", "message": "  "},
        params={"lang": "es"},
    )
    assert empty.status_code == 400 and "está vacío" in visible_text(empty.text)
    [template] = (await http.get("/api/templates", headers=user.auth)).json()["data"]
    gone = await http.post(
        f"/dashboard/templates/{template['id']}/delete", data={"csrf": user.csrf}
    )
    assert gone.status_code == 303
    assert (await http.get("/api/templates", headers=user.auth)).json()["data"] == []


async def test_the_wizard_asks_which_column_holds_the_numbers(app) -> None:
    user = await signup(app)
    phone = await pair_phone(user)
    form = {"csrf": user.csrf, "name": "Avisos", "message": "Hola {nombre}"}
    sheet = {"file": ("avisos.csv", b"Cel,nombre\n5511112222,Ana\n", "text/csv")}
    uploaded = await user.client.post("/dashboard/campaigns", data=form, files=sheet)
    assert uploaded.status_code == 303, uploaded.text
    page = uploaded.headers["location"]
    shown = (await user.client.get(page, params={"lang": "es"})).text
    assert "La columna con los números de teléfono" in visible_text(shown)
    assert '<option value="Cel">Cel</option>' in shown  # none chosen: the owner picks it
    sent = await user.client.post(f"{page}/send", data={"csrf": user.csrf, "phoneColumn": "Cel"})
    assert sent.status_code == 303, sent.text
    [message] = await phone.pull()
    assert message["textMessage"]["text"] == "Hola Ana"


async def test_a_campaign_to_every_contact_with_a_tag(app) -> None:
    user = await signup(app)
    phone = await pair_phone(user)
    for number, name in (("+525511112222", "Ana"), ("+525533334444", "Luis")):
        await user.client.post(
            "/api/contacts",
            json={"phoneNumber": number, "name": name, "tags": ["clientes"]},
            headers=user.auth,
        )
    listed = (await user.client.get("/dashboard/campaigns")).text
    assert '<option value="clientes">clientes</option>' in listed
    form = {"csrf": user.csrf, "name": "Saldos", "message": "Hola {nombre}", "tag": "clientes"}
    empty = {"file": ("", b"", "application/octet-stream")}  # the browser's empty file field
    uploaded = await user.client.post("/dashboard/campaigns", data=form, files=empty)
    assert uploaded.status_code == 303, uploaded.text
    sent = await user.client.post(f"{uploaded.headers['location']}/send", data={"csrf": user.csrf})
    assert sent.status_code == 303, sent.text
    taken = await phone.pull()
    assert sorted(m["textMessage"]["text"] for m in taken) == ["Hola Ana", "Hola Luis"]
