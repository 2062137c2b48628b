"""Deleting a phone from the dashboard says first what it will do: the messages pinned to it
that will fail, those it holds that go back to the queue, the conversations that go with it."""

from __future__ import annotations

from tests.dashboard.words import visible_text
from tests.factories import pair_phone, send, signup


async def test_the_delete_section_counts_what_is_at_stake(app) -> None:
    user = await signup(app)
    phone = await pair_phone(user)
    await send(user, phoneNumbers=["+525511112222"], deviceId=phone.device_id)  # pinned
    await send(user, phoneNumbers=["+525533334444"])  # taken below, not yet confirmed
    await send(user, phoneNumbers=["+525555556666"], deviceId=phone.device_id)
    taken = await phone.pull()
    assert len(taken) == 3
    await phone.inbox([{"phoneNumber": "+525577778888", "message": "hola", "id": "i1"}])
    html = (await user.client.get(f"/dashboard/devices/{phone.device_id}?lang=es")).text
    page = " ".join(visible_text(html).split())
    assert "fallarán (dispositivo eliminado): 2" in page
    assert "vuelven a la cola para tus otros teléfonos: 1" in page
    assert "sus mensajes quedan en Mensajes): 4" in page  # three numbers written to, one reply


async def test_every_main_form_sent_empty_is_answered_on_its_page(app) -> None:
    """A form sent with its fields empty is answered on its own page, with the error where the
    owner types: never the error page (which has no menu)."""
    user = await signup(app)
    for path in (
        "/dashboard/devices",
        "/dashboard/send",
        "/dashboard/keys",
        "/dashboard/webhooks",
        "/dashboard/account/password",
        "/dashboard/templates",
        "/dashboard/opt-outs",
    ):
        answer = await user.client.post(path, data={"csrf": user.csrf}, params={"lang": "es"})
        assert answer.status_code < 500, path
        assert "<nav" in answer.text, (path, answer.text[:300])  # the page, not an error page
