"""The dashboard's send form sends an approved WhatsApp template (the only way to write first,
or after 24 hours), its variables one per line; the fake Graph API receives exactly that."""

from __future__ import annotations

import re
from datetime import timedelta

from smsgate.kit import clock
from tests.dashboard.words import visible_text
from tests.whatsapp.test_cloud import cloud_line, customer_writes, serve


async def test_a_template_from_the_send_form(make_user, app, graph) -> None:
    user = await make_user()
    line = await cloud_line(user, graph)
    sent = await user.client.post(
        "/dashboard/send",
        data={
            "csrf": user.csrf,
            "channel": "whatsapp",
            "numbers": "+5215587654321",
            "message": "",
            "wa_template": "pedido_listo",
            "wa_language": "es_MX",
            "wa_values": "A-17\n\nmañana 10:00\n",
        },
    )
    assert sent.status_code == 303, sent.text
    message_id = re.search(r"sent=(c[a-z0-9]{24})", sent.headers["location"]).group(1)
    assert await serve(app) == 1
    [body] = graph.accepted(line["keys"]["phoneNumberId"])
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "pedido_listo",
        "language": {"code": "es_MX"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "A-17"},
                    {"type": "text", "text": "mañana 10:00"},
                ],
            }
        ],
    }
    stored = (await user.client.get(f"/api/v1/messages/{message_id}", headers=user.auth)).json()
    assert stored["state"] == "sent"
    bad = await user.client.post(
        "/dashboard/send",
        data={
            "csrf": user.csrf,
            "channel": "whatsapp",
            "numbers": "+5215587654321",
            "wa_template": "Pedido Listo",
        },
        params={"lang": "es"},
    )
    assert bad.status_code == 200 and "template.name" in visible_text(bad.text)
    assert 'value="Pedido Listo"' in bad.text  # what was typed is kept


async def test_an_empty_send_form_is_answered_on_the_form(make_user) -> None:
    user = await make_user()
    answer = await user.client.post(
        "/dashboard/send",
        data={"csrf": user.csrf, "numbers": "", "message": ""},
        params={"lang": "es"},
    )
    assert answer.status_code == 200  # the form again, with its error: never a bare 400 page
    assert 'role="alert"' in answer.text and 'id="numbers"' in answer.text


async def test_a_template_from_a_whatsapp_thread_after_the_window(make_user, app, graph) -> None:
    user = await make_user()
    line = await cloud_line(user, graph)
    await customer_writes(user, line)
    [thread] = (await user.client.get("/api/conversations", headers=user.auth)).json()["data"]
    page = await user.client.get(f"/dashboard/conversations/{thread['id']}")
    assert 'name="wa_template"' in page.text  # a WhatsApp thread offers templates
    clock.advance(timedelta(hours=25))  # the customer wrote more than a day ago
    replied = await user.client.post(
        f"/dashboard/conversations/{thread['id']}",
        data={"csrf": user.csrf, "message": "", "wa_template": "seguimiento", "wa_values": "Ana"},
    )
    assert replied.status_code == 303, replied.text
    assert await serve(app) == 1
    [body] = graph.accepted(line["keys"]["phoneNumberId"])
    assert body["type"] == "template" and body["template"]["name"] == "seguimiento"
    assert body["template"]["components"][0]["parameters"] == [{"type": "text", "text": "Ana"}]
