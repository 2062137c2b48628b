"""The dashboard as a person uses it: sign up, pair a phone, send, see messages, manage keys."""

from __future__ import annotations

import html
import re
from typing import Any

from tests.factories import PASSWORD, User, new_client, unique_email


async def _auth_form(browser, path: str, data: dict) -> Any:
    """Post the login or sign-up form as a browser does: after loading it (its CSRF field)."""
    form = await browser.get(path)
    return await browser.post(path, data={**data, "csrf": _csrf(form.text)})


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def _signed_up(browser, prefix: str) -> User:
    """Sign up through the pages and make a key on the keys page (English from here on)."""
    email = unique_email(prefix)
    await _auth_form(browser, "/signup", {"email": email, "password": PASSWORD})
    page = await browser.get("/dashboard?lang=en")
    csrf = _csrf(page.text)
    made = await browser.post(
        "/dashboard/keys", data={"name": "k", "csrf": csrf}, follow_redirects=True
    )
    key = re.search(r"<code[^>]*>(sk_[A-Za-z0-9]+)</code>", made.text).group(1)
    me = (await browser.get("/api/auth/me", headers={"Authorization": f"Bearer {key}"})).json()
    return User(browser, me["id"], email, csrf, key)


async def test_signup_pair_send_and_keys_through_the_pages(app) -> None:
    async with new_client(app) as browser:
        assert (await browser.get("/")).headers["location"] == "/login"
        login = await browser.get("/login", headers={"Accept-Language": "es-MX,es;q=0.9"})
        assert login.status_code == 200 and "Entrar" in login.text and 'lang="es"' in login.text
        email = unique_email("web")
        signed = await _auth_form(browser, "/signup", {"email": email, "password": PASSWORD})
        assert signed.status_code == 303 and signed.headers["location"] == "/dashboard"
        assert "HttpOnly" in signed.headers["set-cookie"]
        overview = await browser.get("/dashboard?lang=en")
        assert overview.status_code == 200 and "Overview" in overview.text
        assert "Plan usage" in overview.text
        csrf = _csrf(overview.text)

        paired = await browser.post(
            "/dashboard/devices", data={"name": "Caja 1", "csrf": csrf}, follow_redirects=True
        )
        assert paired.status_code == 200
        assert "<svg" in paired.text and "/api/mobile/v1" in paired.text
        assert re.search(r"<code[^>]*>pt_[^<]+</code>", paired.text)

        posted = await browser.post(
            "/dashboard/send",
            data={
                "numbers": "+5215555555555\n55 1234 5678",
                "message": "Hola desde la web",
                "device": "",
                "csrf": csrf,
            },
        )
        # redirect after POST: the result is a page of its own, and reloading it sends nothing
        assert posted.status_code == 303
        assert posted.headers["location"].startswith("/dashboard/send?sent=c")
        for _ in range(2):
            sent = await browser.get(posted.headers["location"])
            assert sent.status_code == 200 and "Message accepted" in sent.text
        listing = await browser.get("/dashboard/messages")
        assert "Hola desde la web" in listing.text and "+525512345678" in listing.text
        assert listing.text.count("Hola desde la web") == 1

        bad = await browser.post(
            "/dashboard/send", data={"numbers": "+52 123", "message": "x", "csrf": csrf}
        )
        assert 'role="alert"' in bad.text and "is not a valid phone number" in bad.text

        made = await browser.post(
            "/dashboard/keys", data={"name": "web", "csrf": csrf}, follow_redirects=True
        )
        key = re.search(r"<code[^>]*>(sk_[A-Za-z0-9]+)</code>", made.text)
        assert key, made.text
        me = await browser.get("/api/auth/me", headers={"Authorization": f"Bearer {key.group(1)}"})
        assert me.status_code == 200 and me.json()["email"] == email


async def test_forms_need_their_csrf_field_and_a_session(app) -> None:
    async with new_client(app) as browser:
        assert (await browser.get("/dashboard")).headers["location"] == "/login"
        await _auth_form(browser, "/signup", {"email": unique_email("csrf"), "password": PASSWORD})
        forged = await browser.post(
            "/dashboard/keys", data={"name": "x", "csrf": "forged"}, follow_redirects=True
        )
        assert forged.status_code == 403
        assert forged.headers["content-type"].startswith("text/html")
        assert "este formulario caducó" in forged.text  # the dashboard speaks Spanish first
        keys = await browser.get("/dashboard/keys")
        assert "<td>x</td>" not in keys.text  # the forged form created no key


async def test_every_dashboard_form_refuses_a_forged_or_missing_csrf(app) -> None:
    """Walks the dashboard's routes: each POST (but login, sign-up and logout, which work
    without a session's token) answers 403 to a signed-in browser whose form carries a wrong
    csrf field or none, before it reads anything else the form holds."""
    from fastapi.routing import APIRoute

    from smsgate.dashboard.routes import router

    posts = sorted(
        route.path
        for route in router.routes
        if isinstance(route, APIRoute)
        and "POST" in route.methods
        and route.path.startswith("/dashboard")
        and route.path != "/dashboard/logout"
    )
    assert len(posts) >= 10, posts
    async with new_client(app) as browser:
        await _auth_form(browser, "/signup", {"email": unique_email("forge"), "password": PASSWORD})
        for path in posts:
            url = re.sub(r"\{[^}]+\}", "cmwzzzzzzzzzzzzzzzzzzzzzz", path)
            for form in ({"csrf": "forged", "name": "x"}, {"name": "x"}):
                answer = await browser.post(url, data=form)
                assert answer.status_code == 403, (path, form, answer.status_code)
                assert "este formulario caducó" in answer.text, path


async def test_wrong_password_shows_a_sentence(app) -> None:
    async with new_client(app) as browser:
        email = unique_email("bad")
        await _auth_form(browser, "/signup", {"email": email, "password": PASSWORD})
        browser.cookies.clear()
        wrong = await _auth_form(
            browser, "/login?lang=en", {"email": email, "password": "nope nope nope"}
        )
        assert wrong.status_code == 401 and "wrong email or password" in wrong.text
        weak = await _auth_form(browser, "/signup", {"email": unique_email(), "password": "short"})
        assert weak.status_code == 400 and "at least 10 characters" in weak.text


async def test_the_chat_view_reads_on_open_and_replies(app) -> None:
    from tests.factories import pair_phone

    async with new_client(app) as browser:
        user = await _signed_up(browser, "chat")
        csrf = user.csrf
        phone = await pair_phone(user)
        await phone.inbox([{"phoneNumber": "+5215512345678", "message": "¿Tienen envío?"}])
        listing = await browser.get("/dashboard/conversations")
        assert "+5215512345678" in listing.text and "(1)" in listing.text
        # the list the page refreshes by itself: the same threads and badges
        fragment = await browser.get("/dashboard/conversations/list")
        assert "+5215512345678" in fragment.text and "(1)" in fragment.text
        assert "<html" not in fragment.text
        thread_id = re.search(r'href="/dashboard/conversations/(c[0-9a-z]+)"', listing.text).group(
            1
        )
        opened = await browser.get(f"/dashboard/conversations/{thread_id}")
        assert "¿Tienen envío?" in opened.text and "(1)" not in opened.text  # read on open
        sent = await browser.post(
            f"/dashboard/conversations/{thread_id}",
            data={"message": "Sí, a todo México", "csrf": csrf},
        )
        assert sent.status_code == 303
        shown = await browser.get(sent.headers["location"])
        assert "Sí, a todo México" in shown.text
        pulled = await phone.pull()
        assert pulled[0]["textMessage"]["text"] == "Sí, a todo México"
        other = await browser.get("/dashboard/conversations/cxxxxxxxxxxxxxxxxxxxxxxxx")
        assert other.status_code == 404


async def test_webhooks_page_create_test_reveal_rotate_delete(app) -> None:
    from smsgate.webhooks.delivery import deliver_due
    from tests.webhooks.receiver import receiving

    async with new_client(app) as browser, receiving() as receiver:
        await _auth_form(browser, "/signup", {"email": unique_email("hooks"), "password": PASSWORD})
        csrf = _csrf((await browser.get("/dashboard/webhooks?lang=en")).text)
        created = await browser.post(
            "/dashboard/webhooks",
            data={
                "url": receiver.url,
                "events": ["sms:received", "system:ping"],
                "format": "native",
                "csrf": csrf,
            },
            follow_redirects=True,
        )
        secret = re.search(r"<code[^>]*>(whsec_[^<]+)</code>", created.text).group(1)
        hook_id = re.search(r"/dashboard/webhooks/(c[0-9a-z]+)/test", created.text).group(1)
        tested = await browser.post(
            f"/dashboard/webhooks/{hook_id}/test", data={"csrf": csrf}, follow_redirects=True
        )
        assert tested.status_code == 200
        await deliver_due(app.state.db, app.state.webhook_http, app.state.settings)
        assert [r.headers["x-smsgw-event"] for r in receiver.requests] == ["system:ping"]
        shown = await browser.post(
            f"/dashboard/webhooks/{hook_id}/secret", data={"csrf": csrf}, follow_redirects=True
        )
        assert secret in shown.text and "succeeded" in shown.text
        assert "answer 200" in shown.text  # the receiver's answer, kept with the attempt
        rotated = await browser.post(
            f"/dashboard/webhooks/{hook_id}/rotate", data={"csrf": csrf}, follow_redirects=True
        )
        new = re.search(r"<code[^>]*>(whsec_[^<]+)</code>", rotated.text).group(1)
        assert new != secret
        bad = await browser.post(
            "/dashboard/webhooks",
            data={"url": "ftp://x", "events": ["sms:sent"], "csrf": csrf},
            follow_redirects=True,
        )
        assert 'role="alert"' in bad.text
        # retry the delivery from its row: sent again
        delivery_id = re.search(
            rf"/dashboard/webhooks/{hook_id}/deliveries/(c[0-9a-z]+)/retry", rotated.text
        ).group(1)
        await browser.post(
            f"/dashboard/webhooks/{hook_id}/deliveries/{delivery_id}/retry",
            data={"csrf": csrf},
            follow_redirects=True,
        )
        await deliver_due(app.state.db, app.state.webhook_http, app.state.settings)
        assert len(receiver.requests) == 2
        # edit: other events, disabled; a bad URL changes nothing
        edit = f"/dashboard/webhooks/{hook_id}/edit"
        refused = await browser.post(
            edit, data={"csrf": csrf, "url": "ftp://x", "events": ["sms:sent"], "enabled": "yes"}
        )
        assert 'role="alert"' in refused.text
        edited = await browser.post(
            edit,
            data={"csrf": csrf, "url": receiver.url + "/v2", "events": ["sms:sent"]},
            follow_redirects=True,
        )
        assert receiver.url + "/v2" in edited.text and "disabled by its owner" in edited.text
        hook = (
            await browser.get(f"/api/webhooks/{hook_id}", headers={"X-CSRF-Token": csrf})
        ).json()
        assert (hook["events"], hook["enabled"]) == (["sms:sent"], False)
        gone = await browser.post(f"/dashboard/webhooks/{hook_id}/delete", data={"csrf": csrf})
        assert hook_id not in gone.text


async def test_billing_device_detail_and_account_pages(app) -> None:
    from tests.factories import User, pair_phone

    async with new_client(app) as browser:
        email = unique_email("pages")
        await _auth_form(browser, "/signup", {"email": email, "password": PASSWORD})
        page = await browser.get("/dashboard/billing?lang=en")
        assert page.status_code == 200 and "Last 30 days" in page.text
        csrf = _csrf(page.text)
        made = await browser.post(
            "/dashboard/keys", data={"name": "k", "csrf": csrf}, follow_redirects=True
        )
        key = re.search(r"<code[^>]*>(sk_[A-Za-z0-9]+)</code>", made.text).group(1)
        me = (await browser.get("/api/auth/me", headers={"Authorization": f"Bearer {key}"})).json()
        phone = await pair_phone(User(browser, me["id"], email, csrf, key))
        detail = await browser.get(f"/dashboard/devices/{phone.device_id}")
        assert "<td><code>paired</code></td><td>Paired by samsung/a52</td>" in detail.text
        errors_only = await browser.get(f"/dashboard/devices/{phone.device_id}?level=error")
        assert "<code>paired</code>" not in errors_only.text
        saved = await browser.post(
            f"/dashboard/devices/{phone.device_id}/settings",
            data={
                "csrf": csrf,
                "limitPeriod": "PerMinute",
                "limitValue": "10",
                "simSelectionMode": "Random",
                "processingOrder": "FIFO",
            },
            follow_redirects=True,
        )
        assert "Saved." in saved.text
        assert (await phone.settings())["messages"]["limit_value"] == 10
        invalid = await browser.post(
            f"/dashboard/devices/{phone.device_id}/settings",
            data={"csrf": csrf, "sendIntervalMin": "10", "sendIntervalMax": "2"},
            follow_redirects=True,
        )
        assert 'role="alert"' in invalid.text
        unconfirmed = await browser.post(
            f"/dashboard/devices/{phone.device_id}/delete", data={"csrf": csrf}
        )
        assert 'role="alert"' in unconfirmed.text
        deleted = await browser.post(
            f"/dashboard/devices/{phone.device_id}/delete", data={"csrf": csrf, "confirm": "yes"}
        )
        assert deleted.status_code == 303
        wrong = await browser.post(
            "/dashboard/account/password",
            data={"csrf": csrf, "current": "not mine at all", "new": "another long passphrase"},
            follow_redirects=True,
        )
        assert wrong.status_code == 400
        changed = await browser.post(
            "/dashboard/account/password",
            data={"csrf": csrf, "current": PASSWORD, "new": "another long passphrase"},
            follow_redirects=True,
        )
        assert changed.status_code == 200 and "Password changed" in changed.text
        account = await browser.get("/dashboard/account?lang=en")
        assert "Sending preferences" in account.text
        assert 'name="rerouteStalled" value="on" style="width:auto">' in account.text  # off
        bearer = {"Authorization": f"Bearer {key}"}
        saved = await browser.post(
            "/dashboard/account/settings",
            data={"csrf": csrf, "rerouteStalled": "on"},
            follow_redirects=True,
        )
        assert saved.status_code == 200 and "Saved." in saved.text
        assert 'name="rerouteStalled" value="on" style="width:auto" checked>' in saved.text
        prefs = (await browser.get("/api/account/settings", headers=bearer)).json()
        assert prefs["rerouteStalled"] is True and prefs["optOutBypassExpedited"] is False
        await browser.post(
            "/dashboard/account/settings", data={"csrf": csrf}, follow_redirects=True
        )
        prefs = (await browser.get("/api/account/settings", headers=bearer)).json()
        assert prefs["rerouteStalled"] is False
        forged = await browser.post(
            "/dashboard/account/settings", data={"rerouteStalled": "on"}, follow_redirects=True
        )
        assert forged.status_code == 403
        prefs = (await browser.get("/api/account/settings", headers=bearer)).json()
        assert prefs["rerouteStalled"] is False


async def test_whatsapp_lines_from_the_pages(app, live_server) -> None:
    """Create a cloud line and a web line, update credentials, see the QR while pairing."""
    from smsgate.agents.phone import DeviceClient

    async with new_client(app) as browser:
        await _auth_form(browser, "/signup", {"email": unique_email("wa"), "password": PASSWORD})
        page = await browser.get("/dashboard/devices?lang=en")
        assert "Add WhatsApp line" in page.text
        csrf = _csrf(page.text)
        bad = await browser.post(
            "/dashboard/devices/whatsapp",
            data={"csrf": csrf, "name": "x", "provider": "cloud", "phoneNumberId": "abc"},
            follow_redirects=True,
        )
        assert bad.status_code == 400 and "phoneNumberId" in bad.text
        cloud = await browser.post(
            "/dashboard/devices/whatsapp",
            data={
                "csrf": csrf,
                "name": "Ventas",
                "provider": "cloud",
                "phoneNumberId": "1234567890",
                "accessToken": "EAAGsecretsecretsecret9876",
            },
            follow_redirects=True,
        )
        assert cloud.status_code == 200 and "Credentials missing" in cloud.text
        assert "EAAGsecretsecretsecret9876" not in cloud.text and "9876" in cloud.text
        line_id = re.search(r"/dashboard/devices/(c[a-z0-9]{24})/whatsapp", cloud.text).group(1)
        saved = await browser.post(
            f"/dashboard/devices/{line_id}/whatsapp",
            data={"csrf": csrf, "appSecret": "app-secret-123", "verifyToken": "verify-me-1"},
            follow_redirects=True,
        )
        assert "Saved." in saved.text and "Ready to send" in saved.text
        assert f"/api/whatsapp/webhook/{line_id}" in saved.text

        web = await browser.post(
            "/dashboard/devices/whatsapp",
            data={"csrf": csrf, "name": "Recepción", "provider": "web"},
            follow_redirects=True,
        )
        assert "pip install 'smsgate[whatsapp-web]'" in html.unescape(web.text)
        token = re.search(r"--token (pt_[A-Za-z0-9_-]+)", web.text).group(1)
        web_id = re.search(r"/dashboard/devices/(c[a-z0-9]{24})/pairing", web.text).group(1)
        bridge = DeviceClient(live_server + "/api/mobile/v1")
        await bridge.register(pairing_token=token)
        await bridge.call("POST", "/whatsapp/session", {"state": "pairing", "qr": "2@abc,def"})
        pairing = await browser.get(f"/dashboard/devices/{web_id}")
        assert "<svg" in pairing.text and 'http-equiv="refresh"' in pairing.text
        await bridge.call("POST", "/whatsapp/session", {"state": "connected"})
        linked = await browser.get(f"/dashboard/devices/{web_id}")
        assert "<svg" not in linked.text and "connected" in linked.text
        await bridge.aclose()
        listing = await browser.get("/dashboard/devices")
        assert "WhatsApp cloud" in listing.text and "WhatsApp web" in listing.text


async def test_messages_filters_paging_and_the_timeline(app) -> None:
    from tests.factories import pair_phone, send

    async with new_client(app) as browser:
        user = await _signed_up(browser, "msgs")
        phone = await pair_phone(user)
        ids = [(await send(user, message=f"number {i}")).json()["id"] for i in range(53)]
        other = (await send(user, phoneNumbers=["+5215587654321"], message="other")).json()
        assert ids[0] in [m["id"] for m in await phone.pull()]
        await phone.report(ids[0], "Failed", [("+5215555555555", "Failed", "no signal")])

        first = await browser.get("/dashboard/messages?number=%2B5215555555555")
        assert first.status_code == 200
        assert "other" not in first.text and first.text.count("/dashboard/messages/c") == 50
        older = re.search(r'href="(/dashboard/messages\?[^"]*cursor=[^"]+)"', first.text)
        assert older, "no link to older messages"
        second = await browser.get(older.group(1).replace("&amp;", "&"))
        assert second.text.count("/dashboard/messages/c") == 3
        failed = await browser.get("/dashboard/messages?state=failed")
        assert (
            ids[0] in failed.text and ids[1] not in failed.text and other["id"] not in failed.text
        )
        bad = await browser.get("/dashboard/messages?since=yesterday")
        assert 'role="alert"' in bad.text and "2026-11-27" in bad.text

        detail = await browser.get(f"/dashboard/messages/{ids[0]}")
        assert "Timeline" in detail.text and "no signal" in detail.text
        timeline = detail.text[detail.text.index("Timeline") :]
        assert timeline.index("processing") < timeline.index("failed</strong>")
        stranger = await new_client(app).__aenter__()
        try:
            await _auth_form(
                stranger, "/signup", {"email": unique_email("other"), "password": PASSWORD}
            )
            assert (await stranger.get(f"/dashboard/messages/{ids[0]}")).status_code == 404
        finally:
            await stranger.aclose()


async def test_the_send_form_takes_channel_priority_and_ttl(app) -> None:
    async with new_client(app) as browser:
        user = await _signed_up(browser, "sendform")
        line = await browser.post(
            "/api/devices/whatsapp", json={"name": "Caja", "provider": "web"}, headers=user.auth
        )
        assert line.status_code == 201, line.text
        form = {"csrf": user.csrf, "numbers": "+5215512345678", "message": "hola"}
        sent = await browser.post(
            "/dashboard/send",
            data={**form, "channel": "whatsapp", "priority": "100", "ttl": "600"},
            follow_redirects=True,
        )
        message_id = re.search(r"/dashboard/messages/(c[a-z0-9]{24})", sent.text).group(1)
        stored = (await browser.get(f"/api/v1/messages/{message_id}", headers=user.auth)).json()
        assert (stored["channel"], stored["priority"]) == ("whatsapp", 100)
        assert stored["validUntil"] is not None
        states = await browser.get(f"/dashboard/messages/{message_id}/recipients")
        assert "processing" in states.text and "X-Live-Final" not in states.headers
        for bad, words in [({"ttl": "soon"}, "ttl"), ({"priority": "300"}, "priority")]:
            refused = await browser.post("/dashboard/send", data={**form, **bad})
            assert 'role="alert"' in refused.text and words in refused.text
        overview = await browser.get("/dashboard")
        assert "Last 30 days" in overview.text and 'role="img"' in overview.text


async def test_times_are_the_account_s_own_and_the_schedule_is_read_in_them(app) -> None:
    """A Mexican account's dashboard shows every time in America/Mexico_City (labelled CST),
    reads a scheduled send's time in it, and follows the owner's choice of another zone."""
    from datetime import timedelta

    from smsgate.kit import clock

    async with new_client(app) as browser:
        user = await _signed_up(browser, "schedule")
        prefs = (await browser.get("/api/account/settings", headers=user.auth)).json()
        assert prefs["timeZone"] == "America/Mexico_City"  # from the account's region
        page = await browser.get("/dashboard/send")
        assert 'type="datetime-local"' in page.text and "(America/Mexico_City)" in page.text
        local = (clock.now() + timedelta(days=2)).replace(tzinfo=None, second=0, microsecond=0)
        form = {"csrf": user.csrf, "numbers": "+5215512345678", "message": "mañana"}
        sent = await browser.post(
            "/dashboard/send",
            data={**form, "schedule": local.strftime("%Y-%m-%dT%H:%M")},
            follow_redirects=True,
        )
        message_id = re.search(r"/dashboard/messages/(c[a-z0-9]{24})", sent.text).group(1)
        stored = (await browser.get(f"/api/v1/messages/{message_id}", headers=user.auth)).json()
        utc = local + timedelta(hours=6)  # Mexico City: UTC-6 all year since 2022
        assert stored["scheduleAt"] == utc.strftime("%Y-%m-%dT%H:%M:00.000Z")  # the API: UTC
        shown = await browser.get(f"/dashboard/messages/{message_id}")
        assert "Scheduled for" in shown.text
        assert f"{local:%Y-%m-%d %H:%M} CST" in shown.text
        listed = await browser.get("/dashboard/messages")
        assert f"Scheduled for {local:%Y-%m-%d %H:%M} CST" in listed.text
        spanish = await browser.get("/dashboard/messages?lang=es")
        assert f"{local:%d/%m/%Y %H:%M} CST" in spanish.text  # the date as Mexico writes it
        await browser.get("/dashboard?lang=en")
        for bad in ({"schedule": "mañana"}, {"schedule": "2020-01-01T09:00"}):
            refused = await browser.post("/dashboard/send", data={**form, **bad})
            assert 'role="alert"' in refused.text and "scheduleAt" in refused.text, bad
        # the owner moves the account to Bogotá (UTC-5): the same send shows an hour later
        moved = await browser.post(
            "/dashboard/account/settings",
            data={"csrf": user.csrf, "timeZone": "America/Bogota"},
            follow_redirects=True,
        )
        assert moved.status_code == 200 and 'role="status"' in moved.text
        shown = await browser.get(f"/dashboard/messages/{message_id}")
        assert f"{local + timedelta(hours=1):%Y-%m-%d %H:%M} -05" in shown.text
        wrong = await browser.post(
            "/dashboard/account/settings",
            data={"csrf": user.csrf, "timeZone": "Mars/Olympus"},
            follow_redirects=True,
        )
        assert 'role="alert"' in wrong.text and "Mars/Olympus" in wrong.text
        kept = (await browser.get("/api/account/settings", headers=user.auth)).json()
        assert kept["timeZone"] == "America/Bogota"


async def test_the_time_zone_setting_in_the_api(make_user) -> None:
    user = await make_user()
    refused = await user.client.patch(
        "/api/account/settings",
        json={"timeZone": "Mars/Olympus"},
        headers={**user.auth, "Accept-Language": "es-MX"},
    )
    assert refused.status_code == 400 and refused.json()["field"] == "timeZone"
    assert "no es una zona horaria IANA" in refused.json()["error"]
    changed = await user.client.patch(
        "/api/account/settings", json={"timeZone": "America/Tijuana"}, headers=user.auth
    )
    assert changed.status_code == 200 and changed.json()["timeZone"] == "America/Tijuana"


PYTHON_REPRS = re.compile(r"built-in method|object at 0x|<function |<bound method ")


async def test_no_page_shows_a_python_repr(app) -> None:
    """The words' table was a dict: `t.copy` and `t.keys` in templates printed its methods
    ("<built-in method copy of dict object at 0x...>") on every Copy button and as the API
    keys page's title."""
    async with new_client(app) as browser:
        await _auth_form(browser, "/signup", {"email": unique_email("reprs"), "password": PASSWORD})
        csrf = _csrf((await browser.get("/dashboard")).text)
        for lang in ("es", "en"):
            pages = [
                await browser.post(
                    f"/dashboard/devices?lang={lang}",
                    data={"name": "Caja", "csrf": csrf},
                    follow_redirects=True,
                ),
                await browser.post(
                    f"/dashboard/keys?lang={lang}",
                    data={"name": "k", "csrf": csrf},
                    follow_redirects=True,
                ),
                await browser.get(f"/dashboard/keys?lang={lang}"),
            ]
            for path in ("", "/devices", "/send", "/messages", "/webhooks", "/account"):
                pages.append(await browser.get(f"/dashboard{path}?lang={lang}"))
            for page in pages:
                assert page.status_code == 200, (page.url, page.status_code)
                found = PYTHON_REPRS.search(page.text)
                assert found is None, (str(page.url), page.text[found.start() - 80 : found.end()])
            keys = await browser.get(f"/dashboard/keys?lang={lang}")
            assert f"<h1>{'Llaves API' if lang == 'es' else 'API keys'}</h1>" in keys.text


async def test_a_login_form_posted_from_another_site_is_refused(app, make_user) -> None:
    """Login CSRF: a page elsewhere posts the attacker's credentials to /login and the victim's
    browser ends up in the attacker's account. The form now carries a token tied to a
    pre-session cookie (SameSite=Strict), which a cross-site post has neither of."""
    attacker = await make_user()
    async with new_client(app) as victim:
        forged = await victim.post("/login", data={"email": attacker.email, "password": PASSWORD})
        assert forged.status_code == 403 and "smsgate_session" not in forged.cookies
        assert (await victim.get("/dashboard")).headers["location"] == "/login"
        with_a_stolen_token = await victim.post(
            "/login",
            data={"email": attacker.email, "password": PASSWORD, "csrf": "0" * 64},
        )
        assert with_a_stolen_token.status_code == 403
        # the same form, loaded by the browser itself, logs in
        form = await victim.get("/login")
        assert "samesite=strict" in form.headers["set-cookie"].lower()
        done = await victim.post(
            "/login", data={"email": attacker.email, "password": PASSWORD, "csrf": _csrf(form.text)}
        )
        assert done.status_code == 303 and done.headers["location"] == "/dashboard"


async def test_pairing_says_when_a_phone_cannot_reach_the_server(app) -> None:
    """The add-phone page showed http://127.0.0.1:8000 as the server address without a word;
    a pending phone had no way to see or renew its pairing."""
    from smsgate.devices.pairing import phone_reachability

    assert phone_reachability("http://127.0.0.1:8000") == "loopback"
    assert phone_reachability("https://localhost") == "loopback"
    assert phone_reachability("http://sms.example.com") == "http"
    assert phone_reachability("https://192.168.1.20") == "private"
    assert phone_reachability("https://sms.example.com") is None
    async with new_client(app) as browser:
        user = await _signed_up(browser, "pairing")
        made = await browser.post(
            "/dashboard/devices", data={"name": "Caja", "csrf": user.csrf}, follow_redirects=True
        )
        assert "The Android app requires HTTPS and http://testserver" in made.text  # the suite's
        device_id = re.search(r"/dashboard/devices/(c[a-z0-9]{24})", made.text).group(1)
        page = await browser.get(f"/dashboard/devices/{device_id}")
        assert "New pairing token" in page.text and 'id="pair-code"' not in page.text
        renewed = await browser.post(
            f"/dashboard/devices/{device_id}/pairing",
            data={"csrf": user.csrf},
            follow_redirects=True,
        )
        assert re.search(r'id="pair-code">\d{10}<', renewed.text), renewed.text[:500]
        assert "requires HTTPS" in renewed.text and "<svg" in renewed.text


async def test_a_webhook_form_without_events_says_so_and_keeps_the_input(app) -> None:
    """It answered a bare, unstyled "400" page and lost what was typed."""
    async with new_client(app) as browser:
        user = await _signed_up(browser, "hookform")
        url = "https://hooks.example.com/citas"
        answer = await browser.post(
            "/dashboard/webhooks", data={"url": url, "csrf": user.csrf}, follow_redirects=True
        )
        assert answer.status_code == 200
        assert 'role="alert"' in answer.text and "give at least one event" in answer.text
        assert f'value="{url}"' in answer.text and "<nav" in answer.text  # the page, not a stub
        listed = await browser.get("/api/webhooks", headers=user.auth)
        assert listed.json()["data"] == []
        plain = await browser.post(
            "/dashboard/webhooks",
            data={"url": "http://hooks.example.com/x", "events": ["sms:sent"], "csrf": user.csrf},
            follow_redirects=True,
        )
        assert "travel to it unencrypted" in plain.text  # accepted, but not silently


async def test_the_language_switch_keeps_the_pages_query(app) -> None:
    async with new_client(app) as browser:
        user = await _signed_up(browser, "switch")
        page = await browser.get("/dashboard/messages?state=failed")
        assert 'href="?state=failed&amp;lang=es"' in page.text
        made = await browser.post("/api/devices/android", json={"name": "p"}, headers=user.auth)
        assert made.status_code == 201
        rows = await browser.get("/dashboard/devices/rows")
        assert "<td>—</td>" in rows.text and "<td>0</td>" not in rows.text  # not "SIM 0"


async def test_the_message_filter_reads_dates_as_the_account_s_days(app) -> None:
    """A send at 23:30 in Mexico City is that day's there, though UTC is already on the next:
    the dashboard's date filter finds it on the account's day; a bad date is told in Spanish."""
    from datetime import UTC, datetime

    from smsgate.billing import usage
    from smsgate.kit import clock

    mexico = usage._zone("America/Mexico_City")
    async with new_client(app) as browser:
        user = await _signed_up(browser, "days")
        today = clock.now().astimezone(mexico).date()
        evening = datetime(today.year, today.month, today.day, 23, 30, tzinfo=mexico)
        clock.advance(evening.astimezone(UTC) - clock.now())
        sent = await browser.post(
            "/api/v1/send",
            json={"phoneNumbers": ["+5215512345678"], "message": "noche"},
            headers=user.auth,
        )
        assert sent.status_code == 202, sent.text
        local, utc = today.isoformat(), clock.now().date().isoformat()
        assert local != utc
        found = await browser.get("/dashboard/messages", params={"since": local, "until": local})
        assert sent.json()["id"] in found.text
        other = await browser.get("/dashboard/messages", params={"since": utc, "until": utc})
        assert sent.json()["id"] not in other.text
        bad = await browser.get("/dashboard/messages", params={"since": "ayer", "lang": "es"})
        assert 'role="alert"' in bad.text and "usa una fecha como 2026-11-27" in bad.text


async def test_scheduled_sends_are_listed_and_cancelled_and_failures_sent_again(app) -> None:
    """The day's reminders are scheduled: the owner lists them, cancels one; a send that failed
    for one number goes again to that number only, from its page."""
    from datetime import timedelta

    from smsgate.kit import clock
    from tests.factories import pair_phone

    async with new_client(app) as browser:
        user = await _signed_up(browser, "scheduled")
        later = clock.iso(clock.now() + timedelta(days=1))
        reminder = await browser.post(
            "/api/v1/send",
            json={
                "phoneNumbers": ["+5215512340001"],
                "message": "Cita mañana",
                "scheduleAt": later,
            },
            headers=user.auth,
        )
        now = await browser.post(
            "/api/v1/send",
            json={"phoneNumbers": ["+5215512340002"], "message": "Hoy"},
            headers=user.auth,
        )
        reminder_id, now_id = reminder.json()["id"], now.json()["id"]
        listed = await browser.get("/dashboard/messages", params={"state": "scheduled"})
        assert reminder_id in listed.text and now_id not in listed.text
        assert f'action="/dashboard/messages/{reminder_id}/cancel"' in listed.text
        cancelled = await browser.post(
            f"/dashboard/messages/{reminder_id}/cancel", data={"csrf": user.csrf}
        )
        assert cancelled.status_code == 303
        shown = await browser.get(cancelled.headers["location"])
        assert "The send was cancelled" in shown.text
        stored = await browser.get(f"/api/v1/messages/{reminder_id}", headers=user.auth)
        assert stored.json()["state"] == "cancelled"
        again = await browser.post(
            f"/dashboard/messages/{reminder_id}/cancel", data={"csrf": user.csrf}
        )
        assert again.status_code == 200 and 'role="alert"' in again.text  # said, not a 409 page

        phone = await pair_phone(user)
        numbers = ["+5215512340003", "+5215512340004"]
        pair = await browser.post(
            "/api/v1/send",
            json={"phoneNumbers": numbers, "message": "Su pedido"},
            headers=user.auth,
        )
        pair_id = pair.json()["id"]
        await phone.pull()
        await phone.report(
            pair_id, "Delivered", [(numbers[0], "Delivered", None), (numbers[1], "Failed", "x")]
        )
        page = await browser.get(f"/dashboard/messages/{pair_id}")
        assert f'action="/dashboard/messages/{pair_id}/resend"' in page.text
        resent = await browser.post(
            f"/dashboard/messages/{pair_id}/resend", data={"csrf": user.csrf}
        )
        assert resent.status_code == 303
        new_id = resent.headers["location"].rsplit("/", 1)[-1]
        fresh = (await browser.get(f"/api/v1/messages/{new_id}", headers=user.auth)).json()
        assert [r["phoneNumber"] for r in fresh["recipients"]] == [numbers[1]]
        assert fresh["message"] == "Su pedido"
        pulled = await phone.pull()
        assert [m["phoneNumbers"] for m in pulled if m["id"] == new_id] == [[numbers[1]]]


async def test_a_secret_is_shown_once_and_a_reload_repeats_nothing(app) -> None:
    """Redirect after POST for the forms that make something shown once: the new key, a
    phone's pairing, a webhook's secret are on the page the POST leads to; reloading that page
    neither makes another nor shows the secret again; another account never sees it."""
    async with new_client(app) as browser, new_client(app) as other:
        user = await _signed_up(browser, "once")
        await _signed_up(other, "other")
        made = await browser.post("/dashboard/keys", data={"name": "caja", "csrf": user.csrf})
        assert made.status_code == 303 and made.headers["location"] == "/dashboard/keys"
        shown = await browser.get("/dashboard/keys")
        key = re.search(r"<code[^>]*>(sk_[A-Za-z0-9]+)</code>", shown.text)
        assert key, shown.text
        again = await browser.get("/dashboard/keys")
        assert key.group(1) not in again.text
        keys = (await browser.get("/api/keys", headers={"X-CSRF-Token": user.csrf})).json()
        assert [k["name"] for k in keys["data"]].count("caja") == 1
        # the cookie that carried it is useless to another account
        sealed = made.cookies.get("smsgate_reveal")
        assert sealed and key.group(1) not in sealed
        other.cookies.set("smsgate_reveal", sealed, path="/dashboard")
        assert key.group(1) not in (await other.get("/dashboard/keys")).text

        paired = await browser.post("/dashboard/devices", data={"name": "Caja", "csrf": user.csrf})
        assert paired.status_code == 303
        page = await browser.get(paired.headers["location"])
        token = re.search(r"pt_[A-Za-z0-9_-]+", page.text)
        assert token and "<svg" in page.text  # its QR code, drawn again
        reloaded = await browser.get(paired.headers["location"])
        assert token.group(0) not in reloaded.text
        listed = (await browser.get("/api/devices", headers={"X-CSRF-Token": user.csrf})).json()
        assert [d["name"] for d in listed["data"]] == ["Caja"]

        hook = await browser.post(
            "/dashboard/webhooks",
            data={"url": "https://127.0.0.1:9/hook", "events": ["sms:received"], "csrf": user.csrf},
        )
        assert hook.status_code == 303
        # the secret is whsec_ and standard base64 (+ and / too)
        shown_hook = (await browser.get("/dashboard/webhooks")).text
        secret = re.search(r"<code[^>]*>(whsec_[^<]+)</code>", shown_hook)
        assert secret, shown_hook
        assert secret.group(1) not in (await browser.get("/dashboard/webhooks")).text
