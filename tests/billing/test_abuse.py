"""Anti-abuse: destination countries, premium-rate numbers, sequential-number runs."""

from __future__ import annotations

from tests.factories import send


async def test_destinations_default_to_the_accounts_country(make_user) -> None:
    user = await make_user()
    await user.client.patch(
        "/api/account/settings", json={"allowedCountries": ["MX"]}, headers=user.auth
    )
    refused = await send(user, phoneNumbers=["+5215555555555", "+12025550143"])
    assert refused.status_code == 422
    body = refused.json()
    assert body["code"] == "destination_not_allowed" and body["field"] == "phoneNumbers[1]"
    assert "+12025550143 is in US" in body["error"]
    assert (await user.client.get("/api/v1/messages", headers=user.auth)).json()["data"] == []
    widened = await user.client.patch(
        "/api/account/settings", json={"allowedCountries": ["mx", "US"]}, headers=user.auth
    )
    assert widened.json()["allowedCountries"] == ["MX", "US"]
    assert (await send(user, phoneNumbers=["+12025550143"])).status_code == 202
    bad = await user.client.patch(
        "/api/account/settings", json={"allowedCountries": ["XX"]}, headers=user.auth
    )
    assert bad.status_code == 400 and bad.json()["field"] == "allowedCountries[0]"


async def test_premium_rate_numbers_are_refused(make_user) -> None:
    user = await make_user()
    refused = await send(user, phoneNumbers=["+19005550123"])
    assert refused.status_code == 422 and refused.json()["code"] == "premium_rate_number"


async def test_a_run_of_sequential_numbers_trips_the_velocity_rule(make_user) -> None:
    user = await make_user()
    answers = [
        await send(user, phoneNumbers=[f"+52155123456{i:02d}"], message="code") for i in range(30)
    ]
    statuses = [a.status_code for a in answers]
    assert statuses[:20] == [202] * 20
    assert set(statuses[20:]) == {422}
    assert answers[25].json()["code"] == "sequential_numbers"
    # the same number again and again is not a run
    repeated = [await send(user, phoneNumbers=["+5215598765432"]) for _ in range(25)]
    assert {a.status_code for a in repeated} == {202}


def test_a_new_number_is_parsed_once_for_normalizing_and_checking(monkeypatch) -> None:
    """The destination checks read the parse normalizing made (a parse costs ~12 µs, a send
    to a number not seen before paid it twice), and the number's type, which normalizing read
    to know it valid (a walk over the country's patterns, ~6 µs, was made twice)."""
    import phonenumbers

    from smsgate.billing import abuse
    from smsgate.kit import phones

    calls: list[str] = []
    walks: list[object] = []
    real = phonenumbers.parse
    real_type = phonenumbers.number_type

    def counting(number: str, region: str | None = None, *args: object, **kwargs: object) -> object:
        calls.append(number)
        return real(number, region, *args, **kwargs)  # type: ignore[arg-type]

    def typing_(number: phonenumbers.PhoneNumber) -> int:
        walks.append(number)
        return real_type(number)

    def no_second_walk(number: phonenumbers.PhoneNumber) -> bool:
        raise AssertionError("validity is read from the number's type, not walked again")

    monkeypatch.setattr(phonenumbers, "parse", counting)
    monkeypatch.setattr(phonenumbers, "number_type", typing_)
    monkeypatch.setattr(phonenumbers, "is_valid_number", no_second_walk)
    phones.normalize.cache_clear()  # numbers seen earlier in the suite would parse nothing
    abuse.classify.cache_clear()
    for raw in ("+1 202 555 0177", "+5215512340077", "+19005550177"):
        before, walked = len(calls), len(walks)
        number = phones.normalize(raw, "MX")
        assert len(calls) > before and len(walks) == walked + 1  # normalizing parsed it...
        before = len(calls)
        found = abuse.classify(number)  # ...and the check does not again
        assert found is not None and len(calls) == before, (raw, calls)
        assert len(walks) == walked + 1, (raw, walks)
    assert abuse.classify("+19005550177") == ("US", True)  # premium rate, read from that parse
