"""The ecosystem's own Python SDK (PyPI `android-sms-gateway`) against a live server."""

from __future__ import annotations

import httpx
import pytest
from android_sms_gateway import AsyncAPIClient, Encryptor, domain
from android_sms_gateway.enums import ProcessState

from tests.factories import PASSWORD, pair_phone


def _sdk(live_server: str, user, password: str = PASSWORD, **kwargs) -> AsyncAPIClient:
    return AsyncAPIClient(user.email, password, base_url=f"{live_server}/api/3rdparty/v1", **kwargs)


async def test_sdk_send_state_list_cancel_and_health(make_user, live_server) -> None:
    user = await make_user()
    async with _sdk(live_server, user) as client:
        health = await client.health_check()
        assert health.status.value == "pass"
        for check in (client.liveness_check, client.readiness_check, client.startup_check):
            assert (await check()).status.value == "pass"
        state = await client.send(
            domain.Message(
                phone_numbers=["+5215555555555"],
                text_message=domain.TextMessage(text="Hola"),
                id="sdk-order-1",
                with_delivery_report=True,
            )
        )
        assert state.id == "sdk-order-1" and state.state == ProcessState.Pending
        assert [r.phone_number for r in state.recipients] == ["+5215555555555"]
        again = await client.get_state("sdk-order-1")
        assert again.id == "sdk-order-1" and again.created_at is not None
        second = await client.send(
            domain.Message(
                phone_numbers=["+525512345678"],
                data_message=domain.DataMessage.with_bytes(b"\x01\x02", 53739),
            )
        )
        listed = await client.get_messages()
        assert {m.id for m in listed} == {"sdk-order-1", second.id}
        await client.cancel_message(second.id)
        cancelled = await client.get_state(second.id)
        assert cancelled.state == ProcessState.Cancelled


async def test_sdk_states_follow_a_simulated_phone(make_user, live_server) -> None:
    user = await make_user()
    async with httpx.AsyncClient(timeout=10) as http:
        phone = await pair_phone(user, http=http, base=live_server)
        async with _sdk(live_server, user) as client:
            devices = await client.list_devices()
            assert [d.id for d in devices] == [phone.device_id]
            sent = await client.send(
                domain.Message(
                    phone_numbers=["+5215555555555"], text_message=domain.TextMessage(text="Hola")
                )
            )
            pulled = await phone.pull()
            assert [m["id"] for m in pulled] == [sent.id]
            assert (await client.get_state(sent.id)).state == ProcessState.Processed
            await phone.report(sent.id, "Delivered", [("+5215555555555", "Delivered", None)])
            delivered = await client.get_state(sent.id)
            assert delivered.state == ProcessState.Delivered
            assert delivered.recipients[0].state == ProcessState.Delivered
            assert delivered.device_id == phone.device_id
            assert "Delivered" in (delivered.states or {})


async def test_sdk_encrypted_send_is_stored_verbatim(make_user, live_server) -> None:
    user = await make_user()
    encryptor = Encryptor("a shared passphrase")
    async with _sdk(live_server, user, encryptor=encryptor) as client:
        state = await client.send(
            domain.Message(
                phone_numbers=["+5215555555555"], text_message=domain.TextMessage(text="secreto")
            )
        )
        # the SDK decrypts the numbers it gets back: they went through us untouched
        assert state.recipients[0].phone_number == "+5215555555555"
    listed = await user.client.get(f"/api/v1/messages/{state.id}", headers=user.auth)
    stored = listed.json()
    assert stored["isEncrypted"] and stored["message"].startswith("$aes-256-cbc/pbkdf2-sha1$")


async def test_sdk_tokens_generate_refresh_revoke(make_user, live_server) -> None:
    user = await make_user()
    async with _sdk(live_server, user) as client:
        token = await client.generate_token(
            domain.TokenRequest(scopes=["messages:send", "messages:read"])
        )
        assert token.token_type == "Bearer" and token.refresh_token
        async with AsyncAPIClient(
            None, token.access_token, base_url=f"{live_server}/api/3rdparty/v1"
        ) as bearer:
            sent = await bearer.send(
                domain.Message(
                    phone_numbers=["+5215555555555"], text_message=domain.TextMessage(text="x")
                )
            )
            assert (await bearer.get_state(sent.id)).id == sent.id
        # AsyncAPIClient.refresh_token in 4.3.3 calls post() without its payload (a bug of the
        # SDK's async client); the request it means to send, sent as the sync client does:
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                f"{live_server}/api/3rdparty/v1/auth/token/refresh",
                json={},
                headers={"Authorization": f"Bearer {token.refresh_token}"},
            )
        assert answer.status_code == 201
        refreshed = domain.TokenResponse.from_dict(answer.json())
        assert answer.json()["access_token"] == refreshed.access_token  # both spellings
        assert refreshed.access_token != token.access_token
        await client.revoke_token(refreshed.id)
    async with httpx.AsyncClient() as http:
        denied = await http.get(
            f"{live_server}/api/3rdparty/v1/messages/{sent.id}",
            headers={"Authorization": f"Bearer {refreshed.access_token}"},
        )
        assert denied.status_code == 401 and set(denied.json()) == {"message"}


async def test_errors_have_the_reference_shape(make_user, live_server) -> None:
    user = await make_user()
    base = f"{live_server}/api/3rdparty/v1"
    async with httpx.AsyncClient() as http:
        anonymous = await http.get(f"{base}/messages")
        assert anonymous.status_code == 401 and set(anonymous.json()) == {"message"}
        auth = httpx.BasicAuth(user.email, PASSWORD)
        missing = await http.get(f"{base}/messages/nope", auth=auth)
        assert missing.status_code == 404 and missing.json() == {"message": "message not found"}
        bad = await http.post(
            f"{base}/messages", auth=auth, json={"phoneNumbers": ["+5215555555555"]}
        )
        assert bad.status_code == 400 and "exactly one of" in bad.json()["message"]
        listed = await http.get(f"{base}/messages?limit=1", auth=auth)
        assert listed.status_code == 200 and listed.headers["X-Total-Count"] == "0"
        wrong = await http.get(f"{base}/messages", auth=httpx.BasicAuth(user.email, "nope-nope"))
        assert wrong.status_code == 401


async def test_sdk_webhooks_inbox_and_logs(make_user, live_server, app) -> None:
    from android_sms_gateway.enums import WebhookEvent

    user = await make_user()
    async with httpx.AsyncClient(timeout=10) as http:
        phone = await pair_phone(user, http=http, base=live_server)
        await phone.inbox([{"phoneNumber": "+5215512345678", "message": "hola", "id": "w1"}])
        await phone.logs([{"level": "warn", "message": "battery low"}])
    async with _sdk(live_server, user) as client:
        made = await client.create_webhook(
            domain.Webhook(
                id="hook-1", url="https://hooks.example.com/in", event=WebhookEvent.SMS_RECEIVED
            )
        )
        assert made.id == "hook-1" and made.event == WebhookEvent.SMS_RECEIVED
        moved = await client.create_webhook(
            domain.Webhook(
                id="hook-1", url="https://hooks.example.com/other", event=WebhookEvent.SMS_SENT
            )
        )
        listed = await client.get_webhooks()
        assert [(w.id, w.url, w.event) for w in listed] == [
            ("hook-1", "https://hooks.example.com/other", WebhookEvent.SMS_SENT)
        ]
        assert moved.url.endswith("/other")
        generated = await client.create_webhook(
            domain.Webhook(
                id=None, url="https://hooks.example.com/ping", event=WebhookEvent.SYSTEM_PING
            )
        )
        assert generated.id
        await client.delete_webhook("hook-1")
        await client.delete_webhook("does-not-exist")
        assert [w.id for w in await client.get_webhooks()] == [generated.id]
        inbox = await client.list_inbox_messages()
        assert [(m.sender, m.content_preview, m.message_type) for m in inbox] == [
            ("+5215512345678", "hola", "SMS")
        ]
        logs = await client.get_logs()
        assert any(entry.message == "battery low" for entry in logs)
    async with httpx.AsyncClient() as http:
        auth = httpx.BasicAuth(user.email, PASSWORD)
        base = f"{live_server}/api/3rdparty/v1"
        plain = await http.post(
            f"{base}/webhooks",
            auth=auth,
            json={"url": "http://insecure.example.com", "event": "sms:sent"},
        )
        assert plain.status_code == 400 and "https://" in plain.json()["message"]
        unknown = await http.post(
            f"{base}/webhooks",
            auth=auth,
            json={"url": "https://x.example.com", "event": "app:started"},
        )
        assert unknown.status_code == 400
        refresh = await http.post(
            f"{base}/inbox/refresh",
            auth=auth,
            json={"since": "2026-01-01T00:00:00Z", "until": "2026-12-01T00:00:00Z"},
        )
        assert refresh.status_code == 202


async def test_sdk_settings_apply_to_every_phone(make_user, live_server) -> None:
    from android_sms_gateway.enums import LimitPeriod

    user = await make_user()
    async with httpx.AsyncClient(timeout=10) as http:
        phones = [
            await pair_phone(user, http=http, base=live_server, name=f"p{i}") for i in range(2)
        ]
        async with _sdk(live_server, user) as client:
            await client.update_settings(
                domain.DeviceSettings(
                    messages=domain.SettingsMessages(
                        limit_period=LimitPeriod.PER_MINUTE, limit_value=30
                    )
                )
            )
            await client.patch_settings(
                domain.DeviceSettings(
                    messages=domain.SettingsMessages(send_interval_min=1, send_interval_max=5)
                )
            )
            shown = await client.get_settings()
            assert shown.messages is not None and shown.messages.limit_value == 30
            assert shown.messages.send_interval_max == 5
        for phone in phones:
            sections = await phone.settings()
            assert sections["messages"]["limit_period"] == "PerMinute"
            assert sections["messages"]["send_interval_min"] == 1
        bad = await http.patch(
            f"{live_server}/api/3rdparty/v1/settings",
            auth=httpx.BasicAuth(user.email, PASSWORD),
            json={"messages": {"limit_period": "Sometimes"}},
        )
        assert bad.status_code == 400 and set(bad.json()) == {"message"}


async def test_skip_phone_validation_and_device_active_within(make_user, live_server) -> None:
    user = await make_user()
    async with httpx.AsyncClient(timeout=10) as http:
        auth = httpx.BasicAuth(user.email, PASSWORD)
        base = f"{live_server}/api/3rdparty/v1"
        body = {"phoneNumbers": ["12 34"], "textMessage": {"text": "hola"}}
        refused = await http.post(f"{base}/messages", auth=auth, json=body)
        assert refused.status_code == 400
        kept = await http.post(f"{base}/messages?skipPhoneValidation=true", auth=auth, json=body)
        assert kept.status_code == 202, kept.text
        assert kept.json()["recipients"][0]["phoneNumber"] == "1234"
        nobody = await http.post(
            f"{base}/messages?deviceActiveWithin=1",
            auth=auth,
            json={"phoneNumbers": ["+5215555555555"], "message": "x"},
        )
        assert nobody.status_code == 400 and "active within 1 hours" in nobody.json()["message"]
        phone = await pair_phone(user, http=http, base=live_server)
        pinned = await http.post(
            f"{base}/messages?deviceActiveWithin=1",
            auth=auth,
            json={"phoneNumbers": ["+5215555555555"], "message": "x"},
        )
        assert pinned.status_code == 202 and pinned.json()["deviceId"] == phone.device_id


async def test_out_of_range_numbers_in_queries_are_refused(make_user, live_server) -> None:
    """Found by the API fuzzer: an offset past SQLite's 64-bit integers was a 500. Numbers past
    any meaningful bound are now a 400 naming the parameter, on every database."""
    user = await make_user()
    async with httpx.AsyncClient(timeout=10) as http:
        auth = httpx.BasicAuth(user.email, PASSWORD)
        base = f"{live_server}/api/3rdparty/v1"
        huge = 10**28
        for url in (f"{base}/messages?offset={huge}", f"{base}/inbox?offset={huge}"):
            answer = await http.get(url, auth=auth)
            assert answer.status_code == 400, answer.text
            assert "offset" in answer.text
        assert (await http.get(f"{base}/messages?offset=2147483647", auth=auth)).json() == []
        body = {"phoneNumbers": ["+5215555555555"], "message": "x"}
        for path in ("messages", "message"):
            answer = await http.post(
                f"{base}/{path}?deviceActiveWithin={huge}", auth=auth, json=body
            )
            assert answer.status_code == 400, answer.text
            assert "deviceActiveWithin" in answer.text


async def test_the_send_checks_its_query_after_the_caller(make_user, live_server) -> None:
    """The send reads its query parameters itself (it is served without FastAPI's request
    handler): the same answers as FastAPI's own check gave, the caller checked first."""
    user = await make_user()
    async with httpx.AsyncClient(timeout=10) as http:
        auth = httpx.BasicAuth(user.email, PASSWORD)
        base = f"{live_server}/api/3rdparty/v1"
        body = {"phoneNumbers": ["+5215555555555"], "textMessage": {"text": "hola"}}
        for query, says in (
            ("deviceActiveWithin=abc", "deviceActiveWithin: must be an integer"),
            ("deviceActiveWithin=-1", "deviceActiveWithin: must be greater than or equal to 0"),
            ("skipPhoneValidation=maybe", "skipPhoneValidation: must be true or false"),
            ("deviceActiveWithin=1&deviceActiveWithin=x", "deviceActiveWithin: must be an"),
        ):
            for path in ("messages", "message"):
                answer = await http.post(f"{base}/{path}?{query}", auth=auth, json=body)
                assert answer.status_code == 400, answer.text
                assert answer.json()["message"].startswith(says), answer.text
        anonymous = await http.post(f"{base}/messages?deviceActiveWithin=abc", json=body)
        assert anonymous.status_code == 401
        sent = await http.post(f"{base}/messages?skipPhoneValidation=yes", auth=auth, json=body)
        assert sent.status_code == 202, sent.text


async def test_basic_credentials_see_password_and_country_changes_at_once(
    make_user, live_server
) -> None:
    """Basic credentials were remembered a minute: the old password still worked (and minted
    tokens) and a removed country was still sendable to after the change."""
    from smsgate.accounts import cache

    user = await make_user()
    us_number = domain.Message(
        phone_numbers=["+12025550143"], text_message=domain.TextMessage(text="hi")
    )
    async with _sdk(live_server, user) as client:
        await client.send(us_number)
        narrowed = await user.client.patch(
            "/api/account/settings", json={"allowedCountries": ["MX"]}, headers=user.csrf_header
        )
        assert narrowed.status_code == 200
        with pytest.raises(Exception, match="422"):
            await client.send(us_number)
    changed = await user.client.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": "otra frase de paso larga"},
        headers=user.csrf_header,
    )
    assert changed.status_code == 200, changed.text
    base = f"{live_server}/api/3rdparty/v1"
    async with httpx.AsyncClient(timeout=10) as http:
        old = httpx.BasicAuth(user.email, PASSWORD)
        assert (await http.get(f"{base}/devices", auth=old)).status_code == 401
        # another process, whose cache this change did not clear, reloads the credential within
        # its ttl: the remembered verification no longer matches the account's password
        cache.passwords._entries.clear()
        minted = await http.post(f"{base}/auth/token", auth=old, json={"scopes": ["devices:list"]})
        assert minted.status_code == 401
        new = httpx.BasicAuth(user.email, "otra frase de paso larga")
        assert (await http.get(f"{base}/devices", auth=new)).status_code == 200


async def test_settings_in_either_spelling_and_never_wiped_by_an_unknown_document(
    make_user, live_server, graph
) -> None:
    from tests.whatsapp.test_cloud import cloud_line

    user = await make_user()
    line = await cloud_line(user, graph)
    line_before = (await user.client.get(f"/api/devices/{line['id']}", headers=user.auth)).json()
    async with httpx.AsyncClient(timeout=10) as http:
        await pair_phone(user, http=http, base=live_server)
        auth = httpx.BasicAuth(user.email, PASSWORD)
        url = f"{live_server}/api/3rdparty/v1/settings"
        put = await http.put(
            url, auth=auth, json={"messages": {"limitPeriod": "PerHour", "limitValue": 7}}
        )
        assert put.status_code == 200, put.text
        assert put.json()["messages"]["limit_period"] == "PerHour"  # the reference's spelling
        for document in ({}, {"messages": {"limitPerod": "PerDay"}}, {"gateway": {"x": 1}}):
            for method in ("PUT", "PATCH"):
                refused = await http.request(method, url, auth=auth, json=document)
                assert refused.status_code == 400, (method, document, refused.text)
                assert "no setting this API changes" in refused.json()["message"]
        kept = (await http.get(url, auth=auth)).json()
        assert kept["messages"]["limit_period"] == "PerHour"
        assert kept["messages"]["limit_value"] == 7
    # the WhatsApp line's own settings are not phone settings: untouched
    line_after = (await user.client.get(f"/api/devices/{line['id']}", headers=user.auth)).json()
    assert line_after.get("settings") == line_before.get("settings")


async def test_devices_are_the_phones_that_registered(make_user, app, live_server) -> None:
    from tests.factories import add_device

    user = await make_user()
    await add_device(app, user.account_id, name="never paired")
    async with httpx.AsyncClient(timeout=10) as http:
        phone = await pair_phone(user, http=http, base=live_server)
        async with _sdk(live_server, user) as client:
            listed = await client.list_devices()
    assert [d.id for d in listed] == [phone.device_id]
    assert listed[0].last_seen is not None
