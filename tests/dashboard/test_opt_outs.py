"""The opt-out list on the dashboard: who texted BAJA (or was added by hand), added and removed
there, with a question before a number may be written to again; every destructive form asks
first (app.js reads data-confirm)."""

from __future__ import annotations

import html

from tests.dashboard.words import visible_text
from tests.factories import pair_phone, send, signup


async def test_the_opt_out_list_page(app) -> None:
    user = await signup(app)
    phone = await pair_phone(user)
    await phone.inbox([{"phoneNumber": "+5215599990000", "message": "BAJA", "id": "b1"}])
    http = user.client
    shown = visible_text((await http.get("/dashboard/opt-outs?lang=es")).text)
    assert "+5215599990000" in shown and "por mensaje (BAJA)" in shown
    added = await http.post(
        "/dashboard/opt-outs", data={"csrf": user.csrf, "number": "55 1111 2222"}
    )
    assert added.status_code == 303
    page = visible_text((await http.get(added.headers["location"] + "&lang=es")).text)
    assert "Agregado: no se enviará nada a ese número." in page and "+525511112222" in page
    blocked = (await send(user, phoneNumbers=["+5215511112222"], message="promo")).json()
    assert blocked["recipients"][0]["error"] == "opted_out"  # either spelling
    bad = await http.post(
        "/dashboard/opt-outs", data={"csrf": user.csrf, "number": "abc"}, params={"lang": "es"}
    )
    assert bad.status_code == 400 and "no es un número de teléfono válido" in visible_text(bad.text)
    removed = await http.post(
        "/dashboard/opt-outs/remove", data={"csrf": user.csrf, "number": "+525511112222"}
    )
    assert removed.status_code == 303
    again = (await send(user, phoneNumbers=["+5215511112222"], message="hola")).json()
    assert again["state"] == "processing"
    html = (await http.get("/dashboard/opt-outs")).text
    assert 'data-confirm="' in html  # removing asks first


async def test_destructive_forms_ask_first(app) -> None:
    user = await signup(app)
    await user.client.post("/api/templates", json={"name": "c", "message": "x"}, headers=user.auth)
    await user.client.post(
        "/api/webhooks",
        json={"url": "https://hooks.example.com/a", "events": ["sms:received"]},
        headers=user.auth,
    )
    for path, action in (
        ("/dashboard/keys", "/revoke"),
        ("/dashboard/webhooks", "/delete"),
        ("/dashboard/templates", "/delete"),
    ):
        html = (await user.client.get(path, params={"lang": "es"})).text
        forms = [part for part in html.split("<form")[1:] if action in part.split(">", 1)[0]]
        assert forms and all("data-confirm=" in f.split(">", 1)[0] for f in forms), path


async def test_a_key_with_chosen_scopes_its_last_use_and_snippets(app) -> None:
    user = await signup(app, with_key=False)
    http = user.client
    made = await http.post(
        "/dashboard/keys",
        data={"csrf": user.csrf, "name": "lectura", "scope": "messages:read"},
        params={"lang": "es"},
        follow_redirects=True,
    )
    assert made.status_code == 200
    key = made.text.split('<code id="new-key">', 1)[1].split("<", 1)[0]
    page = html.unescape(made.text)
    assert page.count(f"Bearer {key}") == 3 and "import httpx" in page  # curl, Python, Node
    shown = visible_text(made.text)
    assert "leer mensajes y conversaciones" in shown and "nunca" in shown
    auth = {"Authorization": f"Bearer {key}"}
    assert (await http.get("/api/v1/messages", headers=auth)).status_code == 200
    refused = await http.post(
        "/api/v1/send", json={"phoneNumbers": ["+525511112222"], "message": "x"}, headers=auth
    )
    assert refused.status_code == 403  # only the scope ticked
    listed = visible_text((await http.get("/dashboard/keys", params={"lang": "es"})).text)
    assert "nunca" not in listed  # used now
    wrong = await http.post(
        "/dashboard/keys",
        data={"csrf": user.csrf, "name": "x", "scope": "root"},
        params={"lang": "es"},
        follow_redirects=True,
    )
    assert wrong.status_code == 400


async def test_the_first_run_checklist_ticks_itself_and_goes(app) -> None:
    user = await signup(app, with_key=False)

    async def steps() -> str:
        return visible_text((await user.client.get("/dashboard", params={"lang": "es"})).text)

    first = await steps()
    assert "Primeros pasos" in first and "hecho:" not in first
    made = await user.client.post("/api/keys", json={"name": "k"}, headers=user.csrf_header)
    user.key = made.json()["key"]
    await pair_phone(user)
    after = await steps()
    assert after.count("hecho:") == 2  # the phone, and the key it needed
    await user.client.post(
        "/dashboard/send",
        data={"csrf": user.csrf, "numbers": "+525511112222", "message": "prueba"},
    )
    assert "Primeros pasos" not in await steps()


async def test_a_destructive_action_says_what_it_did(app) -> None:
    user = await signup(app)
    http = user.client
    [key] = (await http.get("/api/keys", headers=user.auth)).json()["data"]
    revoked = await http.post(f"/dashboard/keys/{key['id']}/revoke", data={"csrf": user.csrf})
    assert revoked.status_code == 303
    page = visible_text((await http.get(revoked.headers["location"] + "&lang=es")).text)
    assert "La llave se revocó" in page
    user.key = (await http.post("/api/keys", json={"name": "k"}, headers=user.csrf_header)).json()[
        "key"
    ]
    hook = await http.post(
        "/api/webhooks",
        json={"url": "https://hooks.example.com/a", "events": ["sms:received"]},
        headers=user.auth,
    )
    deleted = await http.post(
        f"/dashboard/webhooks/{hook.json()['id']}/delete", data={"csrf": user.csrf}
    )
    assert deleted.status_code == 303
    page = visible_text((await http.get(deleted.headers["location"] + "&lang=es")).text)
    assert "El webhook se eliminó" in page
    phone = await pair_phone(user)
    unticked = await http.post(
        f"/dashboard/devices/{phone.device_id}/delete",
        data={"csrf": user.csrf},
        params={"lang": "es"},
    )
    assert "marca la casilla para confirmar" in visible_text(unticked.text)
    gone = await http.post(
        f"/dashboard/devices/{phone.device_id}/delete", data={"csrf": user.csrf, "confirm": "yes"}
    )
    page = visible_text((await http.get(gone.headers["location"] + "&lang=es")).text)
    assert "El dispositivo se eliminó" in page


async def test_the_countries_an_account_sends_to_from_its_page(app) -> None:
    user = await signup(app)
    form = {"csrf": user.csrf, "timeZone": "America/Mexico_City"}
    saved = await user.client.post(
        "/dashboard/account/settings",
        data={**form, "allowedCountries": "mx, us co"},
        follow_redirects=True,
    )
    assert saved.status_code == 200
    prefs = (await user.client.get("/api/account/settings", headers=user.auth)).json()
    assert prefs["allowedCountries"] == ["CO", "MX", "US"]
    bad = await user.client.post(
        "/dashboard/account/settings",
        data={**form, "allowedCountries": "MX, XX"},
        params={"lang": "es"},
        follow_redirects=True,
    )
    assert '"XX" no es un código de país' in visible_text(bad.text)
    prefs = (await user.client.get("/api/account/settings", headers=user.auth)).json()
    assert prefs["allowedCountries"] == ["CO", "MX", "US"]  # a refused form changes nothing
