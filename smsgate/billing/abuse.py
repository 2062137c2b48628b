"""Anti-abuse for SMS pumping: destination countries, premium-rate numbers, and runs of
sequential numbers."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Iterable

import phonenumbers

from smsgate.errors import ApiError

SEQUENTIAL_WINDOW = 60.0
SEQUENTIAL_LIMIT = 20  # distinct numbers sharing all but the last two digits, per minute
PREFIX_DIGITS_DROPPED = 2


def check_destinations(numbers: Iterable[str], allowed: frozenset[str]) -> None:
    """422 for a number outside the account's countries, or on a premium-rate range."""
    for index, number in enumerate(numbers):
        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            continue
        region = phonenumbers.region_code_for_number(parsed) or "unknown"
        if region not in allowed:
            raise ApiError(
                422,
                f"phoneNumbers[{index}]: {number} is in {region}, a country this account does "
                f"not send to ({', '.join(sorted(allowed))}); add it with PATCH "
                '/api/account/settings {"allowedCountries": [...]}',
                "destination_not_allowed",
                extra={"field": f"phoneNumbers[{index}]"},
            )
        if phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.PREMIUM_RATE:
            raise ApiError(
                422,
                f"phoneNumbers[{index}]: {number} is a premium-rate number; SMSGate does not "
                "send to those",
                "premium_rate_number",
                extra={"field": f"phoneNumbers[{index}]"},
            )


class SequentialGuard:
    """Refuses a burst of sends walking through consecutive numbers of one prefix (the shape
    of SMS pumping). Kept per process: with several processes each sees its own share."""

    def __init__(self, limit: int = SEQUENTIAL_LIMIT, window: float = SEQUENTIAL_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._seen: dict[tuple[str, str], deque[tuple[float, str]]] = defaultdict(deque)

    def check(self, account_id: str, numbers: Iterable[str]) -> None:
        now = time.monotonic()
        for number in numbers:
            if len(number) < 8 or not number.startswith("+"):
                continue
            key = (account_id, number[:-PREFIX_DIGITS_DROPPED])
            seen = self._seen[key]
            while seen and now - seen[0][0] > self.window:
                seen.popleft()
            distinct = {n for _, n in seen} | {number}
            if len(distinct) > self.limit:
                raise ApiError(
                    422,
                    f"too many different numbers starting {key[1]} in the last minute "
                    f"({len(distinct) - 1}); this looks like SMS pumping, so sending is paused "
                    "for that range",
                    "sequential_numbers",
                )
            seen.append((now, number))
        if len(self._seen) > 50_000:
            self._seen = defaultdict(
                deque, {k: v for k, v in self._seen.items() if v and now - v[-1][0] <= self.window}
            )
