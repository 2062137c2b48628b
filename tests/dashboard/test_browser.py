"""The dashboard in a real browser (Playwright driving Debian's Chromium) against the real
server: sign up → add a phone (a simulated phone pairs with the token the page shows) → send →
delivered → a reply appears in Conversations → answer it → a webhook and its delivery → revoke a
key; and the rest of an owner's week (allowed countries, a key's scopes and its snippets run as
pasted, a partly failed send resent, a reminder edited and cancelled, the opt-out list, a
password reset by email through a local SMTP server). Every page of the day is photographed:
into docs/screenshots/ with SMSGATE_TEST_SCREENSHOTS=1 (`make screenshots`), otherwise into the
test's temporary folder, so a plain `make test` leaves the tree clean. A `<script>` in a
message renders as text."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from smsgate.agents.phone import DeviceClient, MobileError
from smsgate.agents.simulator import SimulatedPhone
from smsgate.kit import clock, i18n, segments
from tests.dashboard.words import english_words, visible_text
from tests.factories import PASSWORD, unique_email
from tests.webhooks.receiver import receiving
from tests.webhooks.test_delivery import deliver

CHROMIUM = os.environ.get("SMSGATE_TEST_CHROMIUM", "/usr/bin/chromium")
DOC_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CUSTOMER = "+5215512345678"
XSS = "<script>window.__xss = 1</script>¡Hola! Tu pedido va en camino"

try:
    from playwright.async_api import Page, async_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    if async_playwright is None or not Path(CHROMIUM).exists():
        message = (
            f"BROWSER TESTS DID NOT RUN: Chromium is not at {CHROMIUM} "
            "(apt-get install chromium, or set SMSGATE_TEST_CHROMIUM)"
        )
        print("\n" + "!" * 80 + f"\n{message}\n" + "!" * 80)
        pytest.skip(message)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = await browser.new_context(
            viewport={"width": 1200, "height": 800},
            locale="es-MX",
            # far from the account's zone (America/Mexico_City): the pages and the schedule field
            # follow the account, not the computer they are read on
            timezone_id="Asia/Tokyo",
        )
        tab = await context.new_page()
        try:
            yield tab
        finally:
            await browser.close()


@pytest.fixture
def shots(tmp_path: Path, lang: str) -> Path:
    """Where the pages' pictures go: the documentation's folder only when asked, and only from
    the Spanish run (the README shows the dashboard its customers read)."""
    asked = os.environ.get("SMSGATE_TEST_SCREENSHOTS") == "1"
    return DOC_SHOTS if asked and lang == "es" else tmp_path


async def shot(page: Page, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0, f"{path} is empty"


async def until_text(page: Page, url: str, text: str, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await page.goto(url)
        if text in await page.content():
            return
        assert asyncio.get_running_loop().time() < deadline, f"{text!r} never appeared on {url}"
        await asyncio.sleep(0.3)


async def in_spanish(page: Page) -> None:
    """The page shows none of the UI's English words, and no Python repr."""
    text = visible_text(await page.content())
    left = [w for w in english_words() if re.search(rf"\b{re.escape(w)}\b", text)]
    assert not left, f"{page.url} shows English: {left}"
    assert "built-in method" not in text and "object at 0x" not in text, page.url


async def sign_up(page: Page, base: str, email: str, shots: Path | None = None) -> None:
    """A new account through the sign-up page (in Spanish), signed in on the overview."""
    await page.goto(f"{base}/signup?lang=es")
    if shots is not None:
        await shot(page, shots, "01-signup")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/dashboard")


@pytest.fixture(params=["es", "en"])
def lang(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_day_in_the_dashboard(page, app, live_server, shots, lang, tmp_path) -> None:
    """The whole day, once in Spanish and once in English: the steps find the page's words in
    the catalog, and the Spanish run fails on any English word of the UI it meets."""
    words = i18n.named_words(lang)
    base = live_server
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    asked: list[str] = []  # destructive forms ask first (data-confirm); the owner says yes

    async def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.on("dialog", lambda dialog: asyncio.ensure_future(accept(dialog)))
    await sign_up(page, base, unique_email("browser"), shots)
    await page.goto(f"{base}/dashboard?lang={lang}")  # the switch; this language from here on
    assert words["overview"] in await page.content()

    async def in_its_language() -> None:
        """The page shows none of the UI's English words (the Spanish run)."""
        if lang == "es":
            await in_spanish(page)

    # add a phone; a simulated phone pairs with the token the page shows
    await page.goto(f"{base}/dashboard/devices")
    await page.fill("form[action='/dashboard/devices'] #name", "Caja 1")
    await page.click("form[action='/dashboard/devices'] button[type=submit]")
    token = (await page.locator("code", has_text="pt_").first.inner_text()).strip()
    await shot(page, shots, "03-add-phone")
    client = DeviceClient(f"{base}/api/mobile/v1")
    await client.register(pairing_token=token, name="browser/phone")
    phone = SimulatedPhone(client, delivery_delay=0.1, send_delay=0.01)
    running = asyncio.get_running_loop().create_task(phone.run())
    try:
        # no reload: the devices table refreshes itself (data-live) and shows the phone online
        await page.locator(f"tbody[data-live] >> text={words['online']}").wait_for(timeout=15_000)
        await shot(page, shots, "04-devices")
        await in_its_language()
        await page.goto(f"{base}/dashboard/devices/{client.device_id}")
        await shot(page, shots, "05-device")
        await in_its_language()

        # send, then watch it delivered; the body is shown as text, never run
        await page.goto(f"{base}/dashboard/send")
        await page.fill("#numbers", CUSTOMER)
        # the page's live counter agrees with the server's own count
        for sample in ("hola ñandú", "a" * 161, "€" * 80, "😀" * 35, XSS):
            await page.fill("#message", sample)
            info = segments.count(sample)
            counted = await page.locator("#message-count").inner_text()
            assert counted == f"{info.units} · {info.encoding} · {info.segments} SMS", sample
        await page.click("form[action='/dashboard/send'] button[type=submit]")
        # the result's recipients update in place until the message is delivered
        delivered = words["state_delivered"]
        await page.locator(f"[data-live] >> text={delivered}").wait_for(timeout=15_000)
        await shot(page, shots, "06-send")
        await in_its_language()
        await until_text(page, f"{base}/dashboard/messages", f">{delivered}<")
        await shot(page, shots, "07-messages")
        await in_its_language()
        assert await page.evaluate("() => window.__xss === undefined")
        assert await page.get_by_text("<script>window.__xss = 1</script>").count() >= 1

        # a scheduled send, typed in the account's time (Mexico City, UTC-6, from its region)
        await page.goto(f"{base}/dashboard/send")
        local = (clock.now() + timedelta(days=2)).replace(tzinfo=None, second=0, microsecond=0)
        await page.fill("#numbers", CUSTOMER)
        await page.fill("#message", "mañana temprano")
        await page.fill("#schedule", local.strftime("%Y-%m-%dT%H:%M"))
        await page.click("form[action='/dashboard/send'] button[type=submit]")
        scheduled = re.search(r"/dashboard/messages/(c[a-z0-9]{24})", await page.content())
        assert scheduled, await page.content()
        stored = await page.request.get(f"{base}/api/v1/messages/{scheduled.group(1)}")
        utc = local + timedelta(hours=6)
        assert (await stored.json())["scheduleAt"] == utc.strftime("%Y-%m-%dT%H:%M:00.000Z")
        # and the page shows it back in that time, labelled
        await page.goto(f"{base}/dashboard/messages/{scheduled.group(1)}")
        day = f"{local:%d/%m/%Y}" if lang == "es" else f"{local:%Y-%m-%d}"
        assert f"{day} {local:%H:%M} CST" in await page.content()
        await in_its_language()

        # the customer answers; the answer is in Conversations; reply from the chat
        await client.inbox([{"phoneNumber": CUSTOMER, "message": "Gracias, ¿a qué hora?"}])
        await page.goto(f"{base}/dashboard/conversations")
        await page.click(f"a:has-text('{CUSTOMER}')")
        assert "Gracias, ¿a qué hora?" in await page.content()
        await page.fill("#reply", "Entre 2 y 4 pm")
        await page.click(f"button:has-text('{words['send']}')")
        assert "Entre 2 y 4 pm" in await page.content()
        # the customer writes again: the open thread shows it without a reload
        await client.inbox([{"phoneNumber": CUSTOMER, "message": "Perfecto, gracias"}])
        await page.locator("[data-live] >> text=Perfecto, gracias").wait_for(timeout=15_000)
        await shot(page, shots, "08-conversation")
        await in_its_language()
        assert await page.evaluate("() => window.__xss === undefined")

        # a webhook, its test delivery and the log of it
        async with receiving() as receiver:
            await page.goto(f"{base}/dashboard/webhooks")
            await page.fill("#url", receiver.url)
            await page.check("input[value='sms:received']")
            await page.click("form[action='/dashboard/webhooks'] button[type=submit]")
            assert "whsec_" in await page.content()  # the secret, shown once on creation
            await page.click(f"button:has-text('{words['test']}')")
            await deliver(app)
            assert [r.headers["x-smsgw-event"] for r in receiver.requests] == ["system:ping"]
            succeeded = words["delivery_succeeded"]
            await until_text(page, f"{base}/dashboard/webhooks", f">{succeeded}<")
            await shot(page, shots, "09-webhooks")
            await in_its_language()

        # an API key: shown once, works, revoked, stops working
        await page.goto(f"{base}/dashboard/keys")
        await page.fill("#name", "ci")
        await page.click("form[action='/dashboard/keys'] button[type=submit]")
        key = (await page.locator("code", has_text="sk_").first.inner_text()).strip()
        await shot(page, shots, "10-keys")
        await in_its_language()
        async with httpx.AsyncClient(base_url=base) as http:
            me = await http.get("/api/auth/me", headers={"Authorization": f"Bearer {key}"})
            assert me.status_code == 200
            await page.click(f"button[aria-label='{words['revoke']} ci']")
            assert asked == [f"{words['confirm_revoke']} ci"]
            await asyncio.sleep(1.1)  # past the credential cache's second
            me = await http.get("/api/auth/me", headers={"Authorization": f"Bearer {key}"})
            assert me.status_code == 401

        # a campaign from a spreadsheet: the draft's preview, then sent and followed live
        agenda = tmp_path / "agenda.csv"
        agenda.write_bytes(
            "teléfono;nombre;hora\r\n5511112222;Ana;10:00\r\n5533334444;Luis;11:30\r\n"
            "12;Nadie;12:00\r\n5555556666;Eva;\r\n".encode("cp1252")
        )
        await page.goto(f"{base}/dashboard/campaigns")
        await in_its_language()
        await page.fill("#c-name", "Citas del lunes")
        await page.set_input_files("#c-file", str(agenda))
        await page.fill("#c-message", "Hola {nombre}, su cita es a las {hora}")
        await page.click("form[action='/dashboard/campaigns'] button[type=submit]")
        await page.get_by_text("Hola Ana, su cita es a las 10:00").wait_for(timeout=15_000)
        await shot(page, shots, "14-campaign-draft")
        await in_its_language()
        await page.click(f"button:has-text('{words['campaign_send']}')")
        done = f"{words['state_delivered']}: 2"
        await page.locator(f"[data-live] >> text={done}").wait_for(timeout=20_000)
        assert words["error_invalid_phone_number"] in await page.content()
        await shot(page, shots, "15-campaign")
        await in_its_language()

        for path, name in [
            ("/dashboard", "02-overview"),
            ("/dashboard/billing", "11-billing"),
            ("/dashboard/account", "12-account"),
        ]:
            await page.goto(base + path)
            await shot(page, shots, name)
            await in_its_language()
        # a phone-sized screen: no page wider than the viewport (a wide table scrolls on its
        # own), and the header leaves most of the screen to the page
        await page.set_viewport_size({"width": 390, "height": 844})
        await page.goto(f"{base}/dashboard/messages")
        await shot(page, shots, "13-phone-messages")
        for path in (
            "/dashboard",
            "/dashboard/devices",
            f"/dashboard/devices/{client.device_id}",
            "/dashboard/send",
            "/dashboard/messages",
            "/dashboard/conversations",
            "/dashboard/campaigns",
            "/dashboard/contacts",
            "/dashboard/templates",
            "/dashboard/opt-outs",
            "/dashboard/webhooks",
            "/dashboard/keys",
            "/dashboard/billing",
            "/dashboard/account",
        ):
            await page.goto(base + path)
            scroll = await page.evaluate("() => document.documentElement.scrollWidth")
            assert scroll <= 390 + 1, f"{path} is {scroll}px wide on a 390px screen"
            header = await page.locator("header").first.evaluate(
                "e => e.getBoundingClientRect().height"
            )
            assert header <= 844 / 5, f"{path}: the header takes {header}px of 844"
        # conversations one pane at a time: the list, then the open thread full width
        await page.goto(f"{base}/dashboard/conversations")
        assert await page.locator(".thread-pane").is_hidden()
        await page.click(f"a:has-text('{CUSTOMER}')")
        assert await page.locator(".list-pane").is_hidden()
        width = await page.locator(".thread-pane").evaluate("e => e.getBoundingClientRect().width")
        assert width > 300, f"the open thread is {width}px wide on a 390px screen"
        await shot(page, shots, "16-phone-conversation")
        await page.click(f"a:has-text('← {words['conversations']}')")
        assert await page.locator(".list-pane").is_visible()
        # the phone is deleted: its conversations stay, to read, with a way to write again
        await page.set_viewport_size({"width": 1280, "height": 900})
        await page.goto(f"{base}/dashboard/devices/{client.device_id}")
        await page.check("input[name=confirm]")
        await page.click(f"form[action$='/delete'] button:has-text('{words['delete']}')")
        await page.goto(f"{base}/dashboard/conversations")
        await page.click(f"a:has-text('{CUSTOMER}')")
        assert "Perfecto, gracias" in await page.content()
        assert await page.get_by_text(words["thread_phone_deleted"]).is_visible()
        assert await page.locator("#reply").count() == 0
        await page.click(f"a:has-text('{words['write_from_another_phone']}')")
        assert CUSTOMER in await page.locator("#numbers").input_value()
        await in_its_language()
        assert not problems, problems  # no script errors, nothing refused by the CSP
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await client.aclose()


async def test_the_api_docs_render_from_this_server_alone(page: Any, live_server: str) -> None:
    """/docs loaded Swagger UI from a CDN (unpinned, and blank offline): now every request the
    page makes goes to this server, and the operations render."""
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda request: (
            None
            if request.url.startswith((live_server, "data:", f"blob:{live_server}"))
            else elsewhere.append(request.url)
        ),
    )
    await page.goto(f"{live_server}/docs")
    await page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    paths = await page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/v1/send" in path for path in paths)
    assert elsewhere == []


async def _run(*command: str) -> str:
    """A command's output (a snippet the keys page shows, run as a developer would paste it)."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, (command[0], err.decode())
    return out.decode()


async def test_the_owners_other_errands(page, app, live_server, inbox, monkeypatch) -> None:
    """The rest of an owner's week, in Spanish, in the browser: the countries the account sends
    to; a key that may only send, whose curl, Python and Node snippets work as shown; a send
    one of whose two numbers failed shows as such, is found by the failed filter and is sent
    again to that number; a scheduled reminder is listed, edited and cancelled; a number goes
    on the opt-out list; a forgotten password is reset by the emailed link."""
    import sys

    words = i18n.named_words("es")
    base = live_server
    monkeypatch.setattr(app.state.settings, "public_url", base)  # the snippets name this server
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))

    async def api(path: str) -> Any:
        answer = await page.request.get(base + path)
        assert answer.status == 200, (path, await answer.text())
        return await answer.json()

    email = unique_email("errands")
    await sign_up(page, base, email)
    # a new account's first steps, none done yet
    assert await page.locator("#first-steps").count() == 1
    assert await page.get_by_text(words["step_done"]).count() == 0
    await in_spanish(page)

    # the countries it sends to: Mexico only; a US number is refused, in words, and not sent
    await page.goto(f"{base}/dashboard/account")
    await page.fill("#allowedCountries", "MX")
    await page.click("form[action='/dashboard/account/settings'] button[type=submit]")
    assert (await api("/api/account/settings"))["allowedCountries"] == ["MX"]
    await page.goto(f"{base}/dashboard/send")
    await page.fill("#numbers", "+12025550123")
    await page.fill("#message", "hola")
    await page.click("form[action='/dashboard/send'] button[type=submit]")
    assert "+12025550123" in await page.locator("[role=alert]").inner_text()
    await in_spanish(page)
    assert (await api("/api/v1/messages"))["data"] == []

    # a key that may only send: its three snippets work as pasted; reading is refused
    await page.goto(f"{base}/dashboard/keys")
    await page.fill("#name", "solo envíos")
    for box in await page.locator("input[name=scope]").all():
        if await box.get_attribute("value") != "messages:send":
            await box.uncheck()
    await page.click("form[action='/dashboard/keys'] button[type=submit]")
    key = (await page.locator("#new-key").inner_text()).strip()
    await in_spanish(page)
    curl = await page.locator("#snippet-curl").inner_text()
    python = await page.locator("#snippet-python").inner_text()
    node = await page.locator("#snippet-node").inner_text()
    assert key in curl and key in python and key in node
    printed = [
        await _run("sh", "-c", curl + " --silent --fail"),  # JSON
        await _run(sys.executable, "-c", python),  # print() of a dict
        await _run("node", "--input-type=module", "-e", node),  # console.log of an object
    ]
    ids = [re.search(r"""["']?id["']?:\s*["'](c[a-z0-9]{24})["']""", out) for out in printed]
    assert all(ids), printed
    for found_id in ids:
        stored = await api(f"/api/v1/messages/{found_id.group(1)}")
        assert stored["message"] == "Hola mundo" and stored["state"] == "processing", stored
    async with httpx.AsyncClient(base_url=base) as http:
        read = await http.get("/api/v1/messages", headers={"Authorization": f"Bearer {key}"})
        assert read.status_code == 403 and read.json()["code"] == "insufficient_scope"
    await page.goto(f"{base}/dashboard/keys")
    row = await page.locator("tr", has_text="solo envíos").inner_text()
    assert words["scope_messages:send"] in row and words["key_never_used"] not in row, row
    await in_spanish(page)

    # a phone; one send to two numbers: one delivered, one failed
    await page.goto(f"{base}/dashboard/devices")
    await page.fill("form[action='/dashboard/devices'] #name", "Recepción")
    await page.click("form[action='/dashboard/devices'] button[type=submit]")
    # this server is at a loopback address, which no phone can reach: the page says so
    warning = await page.locator("[role=alert]").inner_text()
    assert warning == words["reach_loopback"].replace("{url}", f"{base}/api/mobile/v1")
    token = (await page.locator("code", has_text="pt_").first.inner_text()).strip()
    made = re.search(r"/dashboard/devices/(c[a-z0-9]{24})", await page.content())
    assert made, await page.content()
    device_page = f"{base}/dashboard/devices/{made.group(1)}"
    # the token was not copied in time: a new one, and the first no longer pairs
    await page.goto(device_page)
    await page.click(f"button:has-text('{words['new_pairing']}')")
    renewed = (await page.locator("code", has_text="pt_").first.inner_text()).strip()
    assert renewed != token
    client = DeviceClient(f"{base}/api/mobile/v1")
    with pytest.raises(MobileError):
        await client.register(pairing_token=token, name="browser/phone")
    await client.register(pairing_token=renewed, name="browser/phone")
    # renamed: the list shows the new name
    await page.goto(device_page)
    await page.fill("#device-name", "Recepción, planta baja")
    await page.click(f"form[action$='/name'] button:has-text('{words['rename']}')")
    await page.get_by_text(words["renamed_notice"]).wait_for(timeout=10_000)
    await page.goto(f"{base}/dashboard/devices")
    assert "Recepción, planta baja" in visible_text(await page.content())
    try:
        reached, unreachable = "+5215511112222", "+5215533334444"
        await page.goto(f"{base}/dashboard/send")
        await page.fill("#numbers", f"{reached}\n{unreachable}")
        await page.fill("#message", "Su cita es mañana a las 10")
        await page.click("form[action='/dashboard/send'] button[type=submit]")
        found = re.search(r"/dashboard/messages/(c[a-z0-9]{24})", await page.content())
        assert found, await page.content()
        message_id = found.group(1)
        # the result is a page of its own: reloading it sends nothing again
        before = len((await api("/api/v1/messages"))["data"])
        await page.reload()
        assert len((await api("/api/v1/messages"))["data"]) == before
        deadline = asyncio.get_running_loop().time() + 10
        while message_id not in {m["id"] for m in await client.pull()}:
            assert asyncio.get_running_loop().time() < deadline, "the phone never got it"
            await asyncio.sleep(0.1)
        await client.report(
            message_id,
            "Delivered",
            [(reached, "Delivered", None), (unreachable, "Failed", "sin señal")],
        )
        # shown as it is: one of two delivered, one failed; found by the failed filter
        await page.goto(f"{base}/dashboard/messages?state=failed")
        listed = await page.locator("tr", has_text=unreachable).first.inner_text()
        assert words["tally_delivered"].format(n=1, total=2) in listed, listed
        await in_spanish(page)
        await page.goto(f"{base}/dashboard/messages/{message_id}")
        await page.click(f"button:has-text('{words['resend_failed']}')")
        await page.wait_for_url(re.compile(r".*/dashboard/messages/c[a-z0-9]{24}$"))
        again = page.url.rsplit("/", 1)[1]
        assert again != message_id
        resent = await api(f"/api/v1/messages/{again}")
        assert [r["phoneNumber"] for r in resent["recipients"]] == [unreachable]
        assert resent["message"] == "Su cita es mañana a las 10"
        await in_spanish(page)

        # a reminder for the day after tomorrow: listed, its text changed, then cancelled
        await page.goto(f"{base}/dashboard/send")
        local = (clock.now() + timedelta(days=2)).replace(tzinfo=None, second=0, microsecond=0)
        await page.fill("#numbers", reached)
        await page.fill("#message", "Recordatorio de su cita")
        await page.fill("#schedule", local.strftime("%Y-%m-%dT%H:%M"))
        await page.click("form[action='/dashboard/send'] button[type=submit]")
        found = re.search(r"/dashboard/messages/(c[a-z0-9]{24})", await page.content())
        assert found, await page.content()
        reminder = found.group(1)
        await page.goto(f"{base}/dashboard/messages?state=scheduled")
        assert await page.locator(f"a[href='/dashboard/messages/{reminder}']").count() == 1
        await in_spanish(page)
        await page.goto(f"{base}/dashboard/messages/{reminder}")
        await page.fill("#e-message", "Recordatorio: su cita es el jueves a las 10")
        await page.click(f"button:has-text('{words['save_changes']}')")
        await page.get_by_text(words["edited_notice"]).wait_for(timeout=10_000)
        edited = await api(f"/api/v1/messages/{reminder}")
        assert edited["message"] == "Recordatorio: su cita es el jueves a las 10"
        await page.click(f"button:has-text('{words['cancel_send']}')")
        await page.get_by_text(words["cancelled_notice"]).wait_for(timeout=10_000)
        assert (await api(f"/api/v1/messages/{reminder}"))["state"] == "cancelled"
        await in_spanish(page)

        # the phone is replaced: paired again, the new one works and the old one is refused
        await page.goto(device_page)
        await page.click(f"form[action$='/pairing'] button:has-text('{words['pair_again']}')")
        again = (await page.locator("code", has_text="pt_").first.inner_text()).strip()
        new_phone = DeviceClient(f"{base}/api/mobile/v1")
        await new_phone.register(pairing_token=again, name="browser/new-phone")
        await new_phone.pull()
        with pytest.raises(MobileError) as refused:
            await client.pull()
        assert refused.value.status == 401
        await new_phone.aclose()
        # every first step done: the checklist is gone
        await page.goto(f"{base}/dashboard")
        assert await page.locator("#first-steps").count() == 0
    finally:
        await client.aclose()

    # a customer asked by phone not to be written to: on the list, and a send to them fails
    await page.goto(f"{base}/dashboard/opt-outs")
    await page.fill("#o-number", reached)
    await page.click(f"button:has-text('{words['opt_out_add']}')")
    await page.get_by_text(words["opt_out_added"]).wait_for(timeout=10_000)
    assert reached in visible_text(await page.content())
    await in_spanish(page)

    # a forgotten password: the emailed link, a new password, signed in
    await page.click(f"button:has-text('{words['logout']}')")
    await page.goto(f"{base}/forgot")
    await page.fill("#email", email)
    await page.click("button[type=submit]")
    await in_spanish(page)
    deadline = asyncio.get_running_loop().time() + 10
    while not inbox.messages:
        assert asyncio.get_running_loop().time() < deadline, "no reset email arrived"
        await asyncio.sleep(0.1)
    [mail] = inbox.messages
    link = re.search(r"https?://\S+/reset\?token=\S+", mail.get_content())
    assert link, mail.get_content()
    await page.goto(link.group(0))
    await page.fill("#password", "una frase de paso nueva")
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/dashboard")
    await in_spanish(page)
    async with httpx.AsyncClient(base_url=base) as http:
        old = await http.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        new = await http.post(
            "/api/auth/login", json={"email": email, "password": "una frase de paso nueva"}
        )
        assert old.status_code == 401 and new.status_code == 200
    assert not problems, problems


async def test_whatsapp_lines_in_the_browser(page, app, live_server, graph, monkeypatch) -> None:
    """WhatsApp from the dashboard, in Spanish: a web line's page shows how to start its bridge
    and then its QR code, which the (simulated) WhatsApp session scans; a Cloud API line's page
    gives Meta the webhook URL built from the public address; an approved template goes out
    from the send form and, after the customer's 24 hours, from the thread."""
    from smsgate.agents.whatsapp_web import Bridge, SimulatedSession
    from smsgate.whatsapp.lines import Pacer
    from tests.whatsapp.test_cloud import serve

    words = i18n.named_words("es")
    base = live_server
    public = "https://sms.mitienda.mx"  # what the server is reached at, through its TLS proxy
    monkeypatch.setattr(app.state.settings, "public_url", public)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    await sign_up(page, base, unique_email("whatsapp"))

    # a web line: the page says how to start its bridge, then shows the QR to scan
    await page.goto(f"{base}/dashboard/devices")
    await page.fill("#wa-name", "Mostrador")
    await page.select_option("#wa-provider", "web")
    await page.click("form[action='/dashboard/devices/whatsapp'] button[type=submit]")
    command = await page.locator("code", has_text="smsgate whatsapp bridge").inner_text()
    install = await page.locator("code", has_text="pip install").inner_text()
    assert install == "pip install 'smsgate[whatsapp-web]'"
    assert f"--server {public}" in command
    token = re.search(r"--token (pt_\S+)", command)
    assert token, command
    made = re.search(r"/dashboard/devices/(c[a-z0-9]{24})", await page.content())
    assert made, await page.content()
    line_page = f"{base}/dashboard/devices/{made.group(1)}"
    await in_spanish(page)
    client = DeviceClient(f"{base}/api/mobile/v1")
    await client.register(pairing_token=token.group(1), name="smsgate/whatsapp")
    session = SimulatedSession(phone="+5215500001111")
    bridge = Bridge(client, session, pacer=Pacer(per_recipient=0), poll_interval=0.5)
    running = asyncio.get_running_loop().create_task(bridge.run())
    try:
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            await page.goto(line_page)
            if await page.locator("[aria-label=QR] svg").count():
                break
            assert asyncio.get_running_loop().time() < deadline, "no QR on the line's page"
            await asyncio.sleep(0.3)
        await in_spanish(page)
        await session.scan()
        await until_text(page, line_page, "+5215500001111")
        assert await page.locator("[aria-label=QR] svg").count() == 0
        await in_spanish(page)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await client.aclose()

    # a Cloud API line: Meta is given this server's public webhook URL
    number_id = "1098765432109876"
    access = "EAAG" + "a" * 40
    graph.tokens[number_id] = access
    await page.goto(f"{base}/dashboard/devices")
    await page.fill("#wa-name", "Ventas")
    await page.select_option("#wa-provider", "cloud")
    await page.fill("#phoneNumberId", number_id)
    await page.fill("#accessToken", access)
    await page.fill("#appSecret", "s" * 32)
    await page.fill("#verifyToken", "verifica-123")
    await page.click("form[action='/dashboard/devices/whatsapp'] button[type=submit]")
    made = re.search(r"/dashboard/devices/(c[a-z0-9]{24})", await page.content())
    assert made, await page.content()
    line_id = made.group(1)
    webhook = (
        await page.locator("dt", has_text=words["webhook_url_meta"])
        .locator("xpath=following-sibling::dd[1]")
        .inner_text()
    )
    assert webhook.strip() == f"{public}/api/whatsapp/webhook/{line_id}"
    await in_spanish(page)

    # a template from the send form
    await page.goto(f"{base}/dashboard/send")
    await page.select_option("#channel", "whatsapp")
    await page.fill("#numbers", CUSTOMER)
    await page.click(f"summary:has-text('{words['wa_template_title']}')")
    await page.fill("#wa_template", "pedido_listo")
    await page.fill("#wa_values", "A-17\nmañana 10:00")
    await page.click("form[action='/dashboard/send'] button[type=submit]")
    assert re.search(r"/dashboard/messages/c[a-z0-9]{24}", await page.content())
    assert await serve(app) == 1
    [first] = graph.accepted(number_id)
    assert first["type"] == "template" and first["template"]["name"] == "pedido_listo"
    values = [p["text"] for p in first["template"]["components"][0]["parameters"]]
    assert values == ["A-17", "mañana 10:00"]

    # the customer answers; a day later only a template reaches them: from the thread
    line = {"id": line_id, "keys": {"phoneNumberId": number_id, "appSecret": "s" * 32}}
    from tests.whatsapp.test_cloud import customer_writes

    async with httpx.AsyncClient(base_url=base) as http:  # Meta's webhook, signed
        meta = SimpleNamespace(client=http)  # what customer_writes reads of a user
        await customer_writes(meta, line, "¿Ya está mi pedido?", sender=CUSTOMER)
    clock.advance(timedelta(hours=25))
    await page.goto(f"{base}/dashboard/conversations")
    await page.locator("a[href^='/dashboard/conversations/c']").first.click()
    assert "¿Ya está mi pedido?" in await page.content()
    await page.click(f"summary:has-text('{words['wa_template_title']}')")
    await page.fill("#wa_template", "seguimiento")
    await page.fill("#wa_values", "A-17")
    await page.click(
        f"form[action^='/dashboard/conversations/'] button:has-text('{words['send']}')"
    )
    assert await serve(app) == 1
    second = graph.accepted(number_id)[-1]
    assert second["type"] == "template" and second["template"]["name"] == "seguimiento"
    assert second["to"] in (CUSTOMER.lstrip("+"), CUSTOMER)
    await in_spanish(page)
    assert not problems, problems
