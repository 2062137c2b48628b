"""Password reset by email, against a real local SMTP server (aiosmtpd): the link arrives,
works once, signs every other session out; an unknown email gets the same answer and no mail;
asking too often waits; without SMTP the page says who can reset it."""

from __future__ import annotations

import re

from tests.factories import PASSWORD, new_client, signup
from tests.serving import free_port

NEW_PASSWORD = "a brand new pass phrase"


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def test_a_reset_link_by_email_works_once(app, inbox) -> None:
    user = await signup(app)
    browser = new_client(app)
    form = await browser.get("/forgot", params={"lang": "es"})
    asked = await browser.post(
        "/forgot",
        data={"email": user.email.upper(), "csrf": _csrf(form.text)},
        params={"lang": "es"},
    )
    assert asked.status_code == 303  # a page of its own: a reload asks for nothing again
    shown = await browser.get(asked.headers["location"])
    assert shown.status_code == 200 and "el enlace va en camino" in shown.text
    [mail] = inbox.messages
    assert mail["To"] == user.email and "contraseña" in mail["Subject"]
    body = mail.get_content()
    link = re.search(r"https?://\S+/reset\?token=\S+", body)
    assert link, body
    path = link.group(0).split("/", 3)[3]
    page = await browser.get("/" + path)
    assert page.status_code == 200
    token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
    done = await browser.post(
        "/reset", data={"token": token, "password": NEW_PASSWORD, "csrf": _csrf(page.text)}
    )
    assert done.status_code == 303 and done.headers["location"] == "/dashboard"
    assert (await browser.get("/dashboard")).status_code == 200  # this browser is signed in
    assert (await user.client.get("/dashboard")).status_code == 303  # the old session is out
    again = await browser.get("/" + path, params={"lang": "es"})
    assert again.status_code == 400 and "ya no es válido" in again.text  # once only
    old = await new_client(app).post(
        "/api/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert old.status_code == 401


async def test_an_unknown_email_gets_the_same_answer_and_asking_too_often_waits(app, inbox) -> None:
    browser = new_client(app)
    csrf = _csrf((await browser.get("/forgot")).text)
    nobody = await browser.post("/forgot", data={"email": "nadie@example.com", "csrf": csrf})
    user = await signup(app)
    somebody = await browser.post("/forgot", data={"email": user.email, "csrf": csrf})
    assert nobody.status_code == somebody.status_code == 303
    assert nobody.headers["location"] == somebody.headers["location"]  # the same answer
    assert len(inbox.messages) == 1  # only to the account
    for _ in range(2):
        await browser.post("/forgot", data={"email": user.email, "csrf": csrf})
    waited = await browser.post("/forgot", data={"email": user.email, "csrf": csrf})
    assert waited.status_code == 429
    assert len(inbox.messages) == 3
    forged = await browser.post("/forgot", data={"email": user.email, "csrf": "x"})
    assert forged.status_code == 403
    broken = await browser.get("/reset", params={"token": "abc.def"})
    assert broken.status_code == 400


async def test_without_smtp_the_page_says_who_can_reset_it(app) -> None:
    page = await new_client(app).get("/forgot", params={"lang": "es"})
    assert page.status_code == 200
    assert "smsgate accounts reset-password" in page.text and "no envía correos" in page.text


async def test_a_mail_server_that_is_down_is_said_and_the_request_still_counts(
    app, monkeypatch
) -> None:
    user = await signup(app)
    monkeypatch.setattr(app.state.settings, "smtp_url", f"smtp://127.0.0.1:{free_port()}")
    browser = new_client(app)
    csrf = _csrf((await browser.get("/forgot")).text)
    for _ in range(3):
        down = await browser.post(
            "/forgot", data={"email": user.email, "csrf": csrf}, params={"lang": "es"}
        )
        assert down.status_code == 503 and "no se pudo enviar el correo" in down.text
    # each attempt was counted (committed before the mail server was waited on)
    waited = await browser.post("/forgot", data={"email": user.email, "csrf": csrf})
    assert waited.status_code == 429
