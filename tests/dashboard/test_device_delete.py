"""Deleting a phone from the dashboard says first what it will do: the messages pinned to it
that will fail, those it holds that go back to the queue, the conversations that stay; and
once it is deleted, those conversations are still there to read, and take no reply."""

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
    assert "se conservan, con sus mensajes, y ya no admiten respuestas: 4" in page  # 3 + 1 reply

    before = await user.client.get("/api/conversations", headers=user.auth)
    threads = {t["id"]: t for t in before.json()["data"]}
    assert len(threads) == 4
    gone = await user.client.delete(f"/api/devices/{phone.device_id}", headers=user.auth)
    assert gone.status_code == 200, gone.text
    after = (await user.client.get("/api/conversations", headers=user.auth)).json()["data"]
    assert {t["id"] for t in after} == set(threads)  # every thread kept
    assert all(t["deviceId"] is None for t in after)
    reply_to = next(t for t in after if t["contact"] == "+525577778888")
    messages = await user.client.get(
        f"/api/conversations/{reply_to['id']}/messages", headers=user.auth
    )
    assert [m["message"] for m in messages.json()["data"]] == ["hola"]  # and what it held
    refused = await user.client.post(
        f"/api/conversations/{reply_to['id']}/send",
        json={"message": "¿sigue en pie?"},
        headers={**user.auth, "Accept-Language": "es"},
    )
    assert refused.status_code == 409, refused.text
    assert refused.json() == {
        "error": "el teléfono de esta conversación fue eliminado: escribe a +525577778888 "
        "desde otro teléfono",
        "code": "device_deleted",
    }
    html = (await user.client.get(f"/dashboard/conversations/{reply_to['id']}?lang=es")).text
    page = " ".join(visible_text(html).split())
    assert "fue eliminado: se conserva para consulta" in page
    assert 'name="message"' not in html  # no reply box
    assert "/dashboard/send?to=%2B525577778888" in html
    form = await user.client.get("/dashboard/send?to=%2B525577778888&lang=es")
    assert ">+525577778888</textarea>" in form.text
    # by the dashboard's form too, should one be posted anyway: the same words, on the page
    posted = await user.client.post(
        f"/dashboard/conversations/{reply_to['id']}",
        data={"csrf": user.csrf, "message": "hola"},
        params={"lang": "es"},
    )
    assert "escribe a +525577778888 desde otro teléfono" in posted.text


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
        answer = await user.client.post(
            path, data={"csrf": user.csrf}, params={"lang": "es"}, follow_redirects=True
        )
        assert answer.status_code < 500, path
        assert "<nav" in answer.text, (path, answer.text[:300])  # the page, not an error page
