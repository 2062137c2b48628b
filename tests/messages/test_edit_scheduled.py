"""A scheduled reminder changed while it waits: its text and time (PATCH /api/v1/messages/{id}
and the dashboard's message page), through the send's own checks; never once a phone has it,
never to a text that needs more SMS parts than were counted."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from smsgate.kit import clock
from tests.dashboard.words import visible_text
from tests.factories import pair_phone, send

MEXICO = ZoneInfo("America/Mexico_City")


def _later(days: int = 1) -> str:
    return clock.iso(clock.now() + timedelta(days=days)) or ""


async def test_a_scheduled_send_changed_by_the_api(make_user) -> None:
    user = await make_user()
    made = (await send(user, message="Su cita es el lunes", scheduleAt=_later())).json()
    url = f"/api/v1/messages/{made['id']}"
    later = _later(2)
    changed = await user.client.patch(
        url, json={"message": "Su cita es el martes", "scheduleAt": later}, headers=user.auth
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["message"], body["scheduleAt"]) == ("Su cita es el martes", later)
    assert body["segments"] == 1 and body["state"] == "processing"
    longer = await user.client.patch(url, json={"message": "x" * 200}, headers=user.auth)
    assert longer.status_code == 422 and longer.json()["code"] == "more_segments"
    past = await user.client.patch(
        url, json={"scheduleAt": "2020-01-01T09:00:00Z"}, headers=user.auth
    )
    assert past.status_code == 400 and past.json()["field"] == "scheduleAt"
    now = (await send(user, message="ya")).json()
    refused = await user.client.patch(
        f"/api/v1/messages/{now['id']}", json={"message": "otro"}, headers=user.auth
    )
    assert refused.status_code == 409 and refused.json()["code"] == "not_editable"
    kept = (await user.client.get(url, headers=user.auth)).json()
    assert kept["message"] == "Su cita es el martes"  # the refused changes changed nothing


async def test_a_scheduled_send_changed_from_the_dashboard(make_user) -> None:
    user = await make_user()
    await pair_phone(user)
    made = (await send(user, message="Recordatorio", scheduleAt=_later())).json()
    page = await user.client.get(f"/dashboard/messages/{made['id']}", params={"lang": "es"})
    assert 'action="/dashboard/messages/' in page.text and "Guardar cambios" in page.text
    day = (clock.now() + timedelta(days=3)).astimezone(MEXICO).date()
    edited = await user.client.post(
        f"/dashboard/messages/{made['id']}/edit",
        data={"csrf": user.csrf, "message": "Recordatorio: mañana", "schedule": f"{day}T09:30"},
    )
    assert edited.status_code == 303, edited.text
    shown = await user.client.get(edited.headers["location"] + "&lang=es")
    assert "Cambiado" in visible_text(shown.text)
    stored = (await user.client.get(f"/api/v1/messages/{made['id']}", headers=user.auth)).json()
    assert stored["message"] == "Recordatorio: mañana"
    assert stored["scheduleAt"] == f"{day}T15:30:00.000Z"  # 09:30 in Mexico City (UTC-6)
