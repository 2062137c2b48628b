"""The dashboard in Spanish, entirely: every page of a Mexican account that has sent,
received, failed, logged and delivered, read in Spanish, holds none of the UI's English words
(the catalog's English for each of them), nor an English state, level or channel."""

from __future__ import annotations

import re

from tests.dashboard.words import english_words, visible_text
from tests.factories import pair_phone, send, signup


async def test_every_page_in_spanish_holds_no_english(app) -> None:
    user = await signup(app)
    phone = await pair_phone(user, name="Mostrador")
    sent = (await send(user, phoneNumbers=["+5215511112222"], message="Su cita")).json()
    await phone.pull()
    await phone.report(sent["id"], "Delivered", [("+5215511112222", "Delivered", None)])
    failed = (await send(user, phoneNumbers=["+5215533334444"], message="Recordatorio")).json()
    await phone.pull()
    await phone.report(failed["id"], "Failed", [("+5215533334444", "Failed", "sin señal")])
    await phone.inbox([{"phoneNumber": "+5215511112222", "message": "Gracias", "id": "g1"}])
    await phone.inbox([{"phoneNumber": "+5215599990000", "message": "BAJA", "id": "b1"}])
    opted = (await send(user, phoneNumbers=["+5215599990000"], message="Promo")).json()
    threads = (await user.client.get("/api/conversations", headers=user.auth)).json()["data"]
    rows = [{"phoneNumber": "+5215544445555", "nombre": "Ana"}, {"phoneNumber": "no"}]
    body = {"name": "Citas", "message": "Hola {nombre}", "recipients": rows}
    campaign = (await user.client.post("/api/campaigns", json=body, headers=user.auth)).json()
    contact = {"phoneNumber": "+5215544445555", "name": "Ana", "tags": ["pacientes"]}
    await user.client.post("/api/contacts", json=contact, headers=user.auth)
    saved = {"name": "Cita", "message": "Hola {nombre}"}
    await user.client.post("/api/templates", json=saved, headers=user.auth)
    draft = {**body, "draft": True}
    kept = (await user.client.post("/api/campaigns", json=draft, headers=user.auth)).json()
    pages = [
        "/dashboard",
        "/dashboard/devices",
        f"/dashboard/devices/{phone.device_id}",
        "/dashboard/send",
        "/dashboard/messages",
        *(f"/dashboard/messages/{m['id']}" for m in (sent, failed, opted)),
        "/dashboard/conversations",
        f"/dashboard/conversations/{threads[0]['id']}",
        "/dashboard/keys",
        "/dashboard/webhooks",
        "/dashboard/billing",
        "/dashboard/account",
        "/dashboard/campaigns",
        f"/dashboard/campaigns/{campaign['id']}",
        f"/dashboard/campaigns/{kept['id']}",
        "/dashboard/contacts",
        "/dashboard/templates",
        "/dashboard/opt-outs",
    ]
    english = english_words()
    assert len(english) > 80
    states = re.compile(r"\b(processing|delivered|failed|received|opted_out|info|warn)\b")
    for path in pages:
        answer = await user.client.get(path, params={"lang": "es"})
        assert answer.status_code == 200, (path, answer.status_code)
        text = visible_text(answer.text)
        left = sorted(word for word in english if re.search(rf"\b{re.escape(word)}\b", text))
        assert not left, f"{path} shows English: {left}"
        assert not states.search(text), f"{path}: {states.search(text)}"
    # the words a failure is told in: its state in Spanish, the phone's own reason as it came
    shown = visible_text((await user.client.get(f"/dashboard/messages/{failed['id']}")).text)
    assert "fallido" in shown and "sin señal" in shown


async def test_an_error_on_the_dashboard_names_no_api_path(app) -> None:
    """The API's error says which call fixes it; the same refusal on the send form says which
    page does, in the page's language."""
    user = await signup(app)  # sends to MX and US
    csrf = user.csrf
    cases = [
        ({"numbers": "+573001234567", "message": "hola"}, "Cuenta"),  # Colombia: not allowed
        ({"numbers": "+5215511112222", "message": "hola", "channel": "whatsapp"}, "Dispositivos"),
    ]
    for fields, page_name in cases:
        answer = await user.client.post(
            "/dashboard/send", data={"csrf": csrf, **fields}, params={"lang": "es"}
        )
        text = visible_text(answer.text)
        alert = re.search(r'role="alert"[^>]*>([^<]*)<', answer.text)
        assert alert, answer.text
        assert "/api/" not in alert.group(1) and page_name in alert.group(1), alert.group(1)
        assert "/api/" not in text
    api = await send(user, phoneNumbers=["+573001234567"])
    assert api.status_code == 422 and "PATCH /api/account/settings" in api.json()["error"]


async def test_a_partly_failed_send_says_so_and_is_found_by_the_failed_filter(app) -> None:
    """Two of three delivered and one failed: the message is "delivered" as a whole, and the
    dashboard says "2 de 3 entregados · fallidos: 1" and lists it under the failed filter."""
    user = await signup(app)
    phone = await pair_phone(user)
    numbers = ["+5215511110001", "+5215511110002", "+5215511110003"]
    sent = (await send(user, phoneNumbers=numbers, message="Recordatorio")).json()
    other = (await send(user, phoneNumbers=["+5215511110004"], message="Otro")).json()
    await phone.pull()
    outcomes = [(numbers[0], "Delivered", None), (numbers[1], "Delivered", None)]
    await phone.report(sent["id"], "Delivered", [*outcomes, (numbers[2], "Failed", "sin señal")])
    await phone.report(other["id"], "Delivered", [("+5215511110004", "Delivered", None)])
    listed = await user.client.get("/dashboard/messages", params={"lang": "es"})
    assert "2 de 3 entregados · fallidos: 1" in visible_text(listed.text)
    failed = await user.client.get("/dashboard/messages", params={"state": "failed"})
    assert sent["id"] in failed.text and other["id"] not in failed.text
    shown = await user.client.get(f"/dashboard/messages/{sent['id']}")
    assert "2 de 3 entregados · fallidos: 1" in visible_text(shown.text)
