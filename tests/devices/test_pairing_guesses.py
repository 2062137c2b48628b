"""Pairing credentials cannot be guessed: wrong codes and tokens are throttled per address (and
for everyone at once), while the owner still pairs with the right code from their phone."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from smsgate.agents.phone import MobileError
from smsgate.devices.pairing import PAIRING_CODE_LENGTH
from smsgate.kit import clock
from tests.factories import BASE_URL, PASSWORD, pair_phone

ATTACKER = ("198.51.100.7", 40000)
OWNER = ("203.0.113.20", 40001)


def _from(app, client: tuple[str, int]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=client)
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL)


async def _register(http: httpx.AsyncClient, authorization: str) -> httpx.Response:
    return await http.post(
        "/api/mobile/v1/device",
        json={"name": "samsung/a52", "pushToken": None},
        headers={"Authorization": authorization, "User-Agent": "me.capcom.smsgateway/1.68.0"},
    )


async def test_wrong_codes_are_refused_long_before_the_space_is_searched(make_user, app) -> None:
    user = await make_user()
    created = await user.client.post(
        "/api/devices/android", json={"name": "recepción"}, headers=user.auth
    )
    code = created.json()["pairing"]["code"]
    # digits only: the app's code field takes nothing else
    assert len(code) == PAIRING_CODE_LENGTH and code.isdigit()
    statuses = []
    async with _from(app, ATTACKER) as attacker:
        for guess in range(100):
            answer = await _register(attacker, f"Code {guess:010d}")
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert int(answer.headers["Retry-After"]) >= 1
                assert answer.json()["code"] == "too_many_attempts"
        # the right code from the attacker's address while it is locked out: refused too
        assert (await _register(attacker, f"Code {code}")).status_code == 429
        # a guessed pairing token is a guess as well
        assert (await _register(attacker, "Bearer pt_wrong")).status_code == 429
    assert statuses.count(401) <= 10 and statuses.count(429) >= 90
    async with _from(app, OWNER) as owner:
        paired = await _register(owner, f"Code {code}")
    assert paired.status_code == 201, paired.text
    assert paired.json()["id"] == created.json()["id"]
    async with _from(app, OWNER) as owner:  # single use
        assert (await _register(owner, f"Code {code}")).status_code == 401


async def test_current_password_checks_are_guesses_too(make_user) -> None:
    """A phone's token (or a stolen session) could search the account's password through the
    password change, which checks the current one: those checks count like failed logins."""
    user = await make_user()
    phone = await pair_phone(user)
    statuses = []
    for n in range(60):
        try:
            await phone.change_password(f"guess {n}", "a brand new passphrase")
        except MobileError as exc:
            statuses.append(exc.status)
    assert statuses[:50] == [401] * 50 and set(statuses[50:]) == {429}
    with pytest.raises(MobileError) as refused:  # locked: even the right one, for now
        await phone.change_password(PASSWORD, "a brand new passphrase")
    assert refused.value.status == 429
    clock.advance(timedelta(hours=2))
    await phone.change_password(PASSWORD, "a brand new passphrase")
