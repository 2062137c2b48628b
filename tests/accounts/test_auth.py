"""Sign-up, login, sessions, CSRF, throttling, password change, and auth on every route."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from smsgate.kit import clock
from tests.factories import BASE_URL, PASSWORD, new_client, unique_email


async def test_signup_sets_an_httponly_samesite_cookie_and_returns_csrf(app) -> None:
    async with new_client(app) as client:
        resp = await client.post(
            "/api/auth/signup", json={"email": unique_email(), "password": PASSWORD, "name": "Ana"}
        )
        assert resp.status_code == 201, resp.text
        cookie = resp.headers["set-cookie"]
        assert "smsgate_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        body = resp.json()
        assert body["csrfToken"] and body["account"]["name"] == "Ana"
        me = await client.get("/api/auth/me")
        assert me.status_code == 200
        assert me.json()["authenticatedBy"] == "session"
        assert me.json()["id"] == body["account"]["id"]


@pytest.mark.parametrize(
    ("body", "status", "code", "text"),
    [
        (
            {"email": "not-an-email", "password": PASSWORD},
            400,
            "invalid_email",
            'email: "not-an-email" is not a valid email address',
        ),
        (
            {"email": "short@example.com", "password": "abc123"},
            400,
            "weak_password",
            "password: must be at least 10 characters long",
        ),
        (
            {"email": "same@example.com", "password": "aaaaaaaaaaaa"},
            400,
            "weak_password",
            "password: use at least 4 different characters",
        ),
        ({"email": "x@example.com"}, 400, "validation_error", "password: is required"),
    ],
)
async def test_signup_validation(app, body, status, code, text) -> None:
    async with new_client(app) as client:
        resp = await client.post("/api/auth/signup", json=body)
        assert resp.status_code == status, resp.text
        assert resp.json()["code"] == code and resp.json()["error"] == text


async def test_duplicate_email_is_409_case_insensitively(app) -> None:
    email = unique_email()
    async with new_client(app) as client:
        assert (
            await client.post("/api/auth/signup", json={"email": email, "password": PASSWORD})
        ).status_code == 201
        again = await client.post(
            "/api/auth/signup", json={"email": email.upper(), "password": PASSWORD}
        )
        assert again.status_code == 409 and again.json()["code"] == "email_taken"


async def test_login_logout_and_csrf(make_user, app) -> None:
    user = await make_user(with_key=False)
    async with new_client(app) as client:
        wrong = await client.post(
            "/api/auth/login", json={"email": user.email, "password": "nope-nope-nope"}
        )
        assert wrong.status_code == 401
        assert wrong.json() == {"error": "wrong email or password", "code": "invalid_credentials"}
        ok = await client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
        assert ok.status_code == 200, ok.text
        csrf = ok.json()["csrfToken"]
        # a cookie-authenticated write without the CSRF header is refused and changes nothing
        no_csrf = await client.post("/api/keys", json={"name": "k"})
        assert no_csrf.status_code == 403 and no_csrf.json()["code"] == "csrf_failed"
        bad_csrf = await client.post("/api/keys", json={"name": "k"}, headers={"X-CSRF-Token": "x"})
        assert bad_csrf.status_code == 403
        listed = await client.get("/api/keys")
        assert listed.status_code == 200 and listed.json()["data"] == []
        made = await client.post("/api/keys", json={"name": "k"}, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201
        out = await client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
        assert out.status_code == 200
        assert (await client.get("/api/auth/me")).status_code == 401


async def test_bearer_requests_need_no_csrf(make_user) -> None:
    user = await make_user()
    user.client.cookies.clear()
    resp = await user.client.post("/api/keys", json={"name": "k2"}, headers=user.auth)
    assert resp.status_code == 201


async def test_login_is_throttled_after_repeated_failures(make_user, app) -> None:
    user = await make_user(with_key=False)
    async with new_client(app) as client:
        for _ in range(5):
            resp = await client.post(
                "/api/auth/login", json={"email": user.email, "password": "wrong-password"}
            )
            assert resp.status_code == 401
        locked = await client.post(
            "/api/auth/login", json={"email": user.email, "password": PASSWORD}
        )
        assert locked.status_code == 429
        assert int(locked.headers["Retry-After"]) >= 1
        assert locked.json()["code"] == "too_many_attempts"


async def test_login_throttle_grows_and_expires(make_user, app) -> None:
    from datetime import timedelta

    from smsgate.kit import clock

    user = await make_user(with_key=False)
    async with new_client(app) as client:
        for _ in range(5):
            await client.post(
                "/api/auth/login", json={"email": user.email, "password": "wrong-password"}
            )
        first = int(
            (
                await client.post("/api/auth/login", json={"email": user.email, "password": "x"})
            ).headers["Retry-After"]
        )
        clock.advance(timedelta(seconds=first + 1))
        await client.post(
            "/api/auth/login", json={"email": user.email, "password": "wrong-password"}
        )
        second = int(
            (
                await client.post("/api/auth/login", json={"email": user.email, "password": "x"})
            ).headers["Retry-After"]
        )
        assert second > first
        clock.advance(timedelta(seconds=second + 1))
        ok = await client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
        assert ok.status_code == 200


async def test_password_change_revokes_other_sessions_and_tokens(make_user, app) -> None:
    user = await make_user(with_key=True)
    tokens = (await user.client.post("/api/auth/token", headers=user.csrf_header)).json()
    async with new_client(app) as other:
        await other.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
        assert (await other.get("/api/auth/me")).status_code == 200
        weak = await user.client.post(
            "/api/auth/password",
            json={"currentPassword": PASSWORD, "newPassword": "short"},
            headers=user.csrf_header,
        )
        assert weak.status_code == 400 and weak.json()["field"] == "newPassword"
        wrong = await user.client.post(
            "/api/auth/password",
            json={"currentPassword": "not-it-at-all", "newPassword": "another good passphrase"},
            headers=user.csrf_header,
        )
        assert wrong.status_code == 403
        changed = await user.client.post(
            "/api/auth/password",
            json={"currentPassword": PASSWORD, "newPassword": "another good passphrase"},
            headers=user.csrf_header,
        )
        assert changed.status_code == 200, changed.text
        assert (await user.client.get("/api/auth/me")).status_code == 200  # this session stays
        assert (await other.get("/api/auth/me")).status_code == 401
        access = {"Authorization": f"Bearer {tokens['accessToken']}"}
        assert (await other.get("/api/auth/me", headers=access)).status_code == 401
        refreshed = await other.post(
            "/api/auth/token/refresh", json={"refreshToken": tokens["refreshToken"]}
        )
        assert refreshed.status_code == 401
        assert (
            await user.client.get("/api/auth/me", headers=user.auth)
        ).status_code == 200  # keys stay


PROTECTED = [
    ("GET", "/api/auth/me"),
    ("POST", "/api/auth/logout"),
    ("POST", "/api/auth/password"),
    ("POST", "/api/auth/token"),
    ("POST", "/api/auth/token/revoke"),
    ("GET", "/api/auth/tokens"),
    ("DELETE", "/api/auth/tokens/cxxxxxxxxxxxxxxxxxxxxxxxx"),
    ("GET", "/api/keys"),
    ("POST", "/api/keys"),
    ("DELETE", "/api/keys/cxxxxxxxxxxxxxxxxxxxxxxxx"),
    ("POST", "/api/v1/send"),
    ("GET", "/api/v1/messages"),
    ("GET", "/api/v1/messages/cxxxxxxxxxxxxxxxxxxxxxxxx"),
    ("POST", "/api/v1/messages/cxxxxxxxxxxxxxxxxxxxxxxxx/cancel"),
    ("GET", "/api/devices"),
    ("POST", "/api/devices/android"),
    ("POST", "/api/devices/whatsapp"),
    ("GET", "/api/devices/cxxxxxxxxxxxxxxxxxxxxxxxx"),
    ("POST", "/api/devices/cxxxxxxxxxxxxxxxxxxxxxxxx/pairing"),
    ("GET", "/api/devices/cxxxxxxxxxxxxxxxxxxxxxxxx/settings"),
    ("PATCH", "/api/devices/cxxxxxxxxxxxxxxxxxxxxxxxx/settings"),
    ("GET", "/api/devices/cxxxxxxxxxxxxxxxxxxxxxxxx/logs"),
    ("DELETE", "/api/devices/cxxxxxxxxxxxxxxxxxxxxxxxx"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_every_api_route_needs_credentials(client, method, path) -> None:
    for headers in ({}, {"Authorization": "Basic Zm9vOmJhcg=="}, {"Authorization": "Bearer nope"}):
        resp = await client.request(method, path, headers=headers, json={})
        assert resp.status_code == 401, (method, path, headers, resp.text)
        assert resp.json()["code"] == "unauthorized"


async def test_unknown_routes_are_404_in_the_error_shape(client) -> None:
    resp = await client.get("/api/nothing-here")
    assert resp.status_code == 404
    assert resp.json()["code"] == "not_found" and "error" in resp.json()
    wrong_method = await client.put("/api/v1/send")
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == "method_not_allowed"


async def _fail_logins(app, email: str, forwarded_for: str, times: int) -> int:
    async with new_client(app) as client:
        status = 0
        for _ in range(times):
            status = (
                await client.post(
                    "/api/auth/login",
                    json={"email": email, "password": "wrong-password"},
                    headers={"X-Forwarded-For": forwarded_for},
                )
            ).status_code
        return status


async def test_behind_a_trusted_proxy_the_throttle_counts_each_client(settings) -> None:
    """With SMSGATE_TRUSTED_PROXIES naming the proxy, X-Forwarded-For says who the client is:
    one client's failures do not lock out another behind the same proxy. Without it the header
    is ignored (anyone could send it), and everyone behind the proxy is one client."""
    from smsgate.app import create_app
    from tests.factories import signup

    for trusted, other_client_status in (("127.0.0.1", 401), ("", 429)):
        app = create_app(settings.model_copy(update={"trusted_proxies": trusted}))
        try:
            user = await signup(app, with_key=False)
            await user.client.aclose()
            assert await _fail_logins(app, user.email, "203.0.113.5", 6) == 429
            assert await _fail_logins(app, user.email, "203.0.113.6", 1) == other_client_status
        finally:
            await app.state.webhook_http.aclose()
            await app.state.send_writer.close()
            await app.state.db.dispose()


async def test_guesses_spread_over_many_addresses_lock_the_account(make_user, app) -> None:
    """150 wrong passwords for one account from 30 addresses, 5 each (none of them locked by
    its own count), then the right one: refused. The account-level limit is 10 times an
    address's, so a person mistyping from one address never meets it."""
    user = await make_user()
    statuses = []
    for n in range(30):
        transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{n + 1}", 5000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            for _ in range(5):
                answer = await client.post(
                    "/api/auth/login", json={"email": user.email, "password": "guess"}
                )
                statuses.append(answer.status_code)
    assert statuses.count(429) >= 90  # past the first 50, every guess is refused unchecked
    transport = httpx.ASGITransport(app=app, client=("203.0.113.99", 5000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        right = await client.post(
            "/api/auth/login", json={"email": user.email, "password": PASSWORD}
        )
        assert right.status_code == 429 and int(right.headers["Retry-After"]) >= 1
        clock.advance(timedelta(hours=2))
        later = await client.post(
            "/api/auth/login", json={"email": user.email, "password": PASSWORD}
        )
        assert later.status_code == 200, later.text


async def test_an_address_presenting_bad_keys_is_slowed_down(settings) -> None:
    """Wrong keys and tokens were answered 401 without end; an address that keeps presenting
    them now gets 429 and Retry-After, while a working key from it is never refused."""
    from smsgate.app import create_app
    from smsgate.kit.crypto import with_checksum
    from tests.factories import new_client, signup

    app = create_app(settings.model_copy(update={"bad_credentials_per_minute": 5}))
    try:
        user = await signup(app)
        async with new_client(app) as guesser:
            statuses = []
            for _ in range(7):
                guess = {"Authorization": f"Bearer {with_checksum('sk_', 32)}"}
                wrong = await guesser.get("/api/v1/messages", headers=guess)
                statuses.append(wrong.status_code)
            assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429], statuses
            assert int(wrong.headers["Retry-After"]) >= 1
            assert wrong.json()["code"] == "too_many_attempts"
            good = await guesser.get("/api/v1/messages", headers=user.auth)
            assert good.status_code == 200
        await user.client.aclose()
    finally:
        await app.state.send_writer.close()
        await app.state.webhook_http.aclose()
        await app.state.db.dispose()
