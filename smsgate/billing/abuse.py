"""Anti-abuse for SMS pumping: destination countries, premium-rate numbers, and runs of
sequential numbers."""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import lru_cache

import phonenumbers

from smsgate.errors import ApiError
from smsgate.kit import phones
from smsgate.kit.i18n import t

SEQUENTIAL_WINDOW = 60.0
SEQUENTIAL_LIMIT = 20  # distinct numbers sharing all but the last two digits, per minute
PREFIX_DIGITS_DROPPED = 2


@lru_cache(maxsize=50_000)
def classify(number: str) -> tuple[str, bool] | None:
    """(country, whether premium-rate) of an E.164 number; None when it has no country: it does
    not parse, or no country's numbering plan holds it (only a number kept as written, without
    validation, can be either; it is sent as written, as the reference server does)."""
    found = phones.parsed(number)
    if found is None:
        return None
    parsed, kind = found
    region = phonenumbers.region_code_for_number(parsed)
    if region is None:
        return None
    return region, kind == phonenumbers.PhoneNumberType.PREMIUM_RATE


def check_destinations(numbers: Iterable[str], allowed: frozenset[str]) -> None:
    """422 for a number outside the account's countries, or on a premium-rate range."""
    for index, number in enumerate(numbers):
        found = classify(number)
        if found is None:
            continue
        region, premium = found
        if region not in allowed:
            raise ApiError(
                422,
                t(
                    "phoneNumbers[{index}]: {number} is in {region}, a country this account does "
                    "not send to ({value}); add it with PATCH /api/account/settings "
                    '{{"allowedCountries": [...]}}',
                    index=index,
                    number=number,
                    region=region,
                    value=", ".join(sorted(allowed)),
                ),
                "destination_not_allowed",
                extra={"field": f"phoneNumbers[{index}]"},
                for_people=t(
                    "{number} is in {region}, a country this account does not send to "
                    "({value}); add the country on the Account page",
                    number=number,
                    region=region,
                    value=", ".join(sorted(allowed)),
                ),
            )
        if premium:
            raise ApiError(
                422,
                t(
                    "phoneNumbers[{index}]: {number} is a premium-rate number; SMSGate does not "
                    "send to those",
                    index=index,
                    number=number,
                ),
                "premium_rate_number",
                extra={"field": f"phoneNumbers[{index}]"},
            )


class SequentialGuard:
    """Refuses a burst of sends walking through different numbers of one prefix (the shape of
    SMS pumping). Kept per process: with several processes each sees its own share."""

    def __init__(self, limit: int = SEQUENTIAL_LIMIT, window: float = SEQUENTIAL_WINDOW) -> None:
        self.limit = limit
        self.window = window
        # (account, prefix) -> {number: last time sent}; only distinct numbers are kept
        self._seen: dict[tuple[str, str], dict[str, float]] = {}

    def check(self, account_id: str, numbers: Iterable[str]) -> None:
        now = time.monotonic()
        for number in numbers:
            if len(number) < 8 or not number.startswith("+"):
                continue
            key = (account_id, number[:-PREFIX_DIGITS_DROPPED])
            seen = self._seen.setdefault(key, {})
            if number not in seen and len(seen) >= self.limit:
                for old in [n for n, at in seen.items() if now - at > self.window]:
                    del seen[old]
                if len(seen) >= self.limit:
                    raise ApiError(
                        422,
                        t(
                            "too many different numbers starting {prefix} in the last minute "
                            "({count}); this looks like SMS pumping, so sending is paused for that "
                            "range",
                            prefix=key[1],
                            count=len(seen),
                        ),
                        "sequential_numbers",
                    )
            seen[number] = now
        if len(self._seen) > 50_000:
            self._seen = {
                k: v
                for k, v in self._seen.items()
                if any(now - at <= self.window for at in v.values())
            }
