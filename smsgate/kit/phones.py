"""Phone numbers to E.164, with Mexico's legacy mobile '1' accepted as users write it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from smsgate.kit.i18n import t

MAX_INPUT_LENGTH = 32
_LEGACY_MX = re.compile(r"\+521\d{10}")


class InvalidPhoneNumber(ValueError):
    pass


@lru_cache(maxsize=50_000)  # recipients repeat; parsing costs ~30 µs (invalid ones are not kept)
def normalize(raw: str, region: str) -> str:
    """Return the E.164 form of `raw`, read in `region` when it has no country code.

    Mexican mobile numbers written with the legacy '1' after +52 (+521 55 1234 5678, which
    WhatsApp still uses) are not valid to libphonenumber, yet real users send them: they are
    accepted when the number without the '1' is valid, and kept as written (+5215512345678).
    """
    text = raw.strip()
    if not text or len(text) > MAX_INPUT_LENGTH:
        raise InvalidPhoneNumber(t('"{raw}" is not a valid phone number', raw=raw))
    # +521 and ten digits is never valid as written (Mexican numbers have ten digits since
    # 2019), so check the number without the '1' first: one parse instead of two
    if _LEGACY_MX.fullmatch(text):
        without_one = phonenumbers.parse("+52" + text[4:], None)
        if (kind := phonenumbers.number_type(without_one)) != _UNKNOWN:
            return _keep(text, without_one, kind)
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(t('"{raw}" is not a valid phone number', raw=raw)) from exc
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if (kind := phonenumbers.number_type(parsed)) != _UNKNOWN:
        return _keep(e164, parsed, kind)
    if e164.startswith("+521") and len(e164) == 14:
        without_one = phonenumbers.parse("+52" + e164[4:], None)
        if (kind := phonenumbers.number_type(without_one)) != _UNKNOWN:
            return _keep(e164, without_one, kind)
    raise InvalidPhoneNumber(t('"{raw}" is not a valid phone number', raw=raw))


# A number is valid exactly when libphonenumber finds it a type (is_valid_number is that same
# walk over the country's number patterns; the two agreed on 200,000 random numbers of every
# country code), so normalize checks validity by reading the type, which the destination checks
# need too (billing/abuse.py: premium rate), and keeps both: a new number is parsed once and its
# patterns walked once (~12 + ~6 µs each, measured).
_UNKNOWN = phonenumbers.PhoneNumberType.UNKNOWN
_parsed: dict[str, tuple[phonenumbers.PhoneNumber, int]] = {}
MAX_KEPT = 50_000


def _keep(e164: str, number: phonenumbers.PhoneNumber, kind: int) -> str:
    if len(_parsed) >= MAX_KEPT:
        _parsed.clear()
    _parsed[e164] = (number, kind)
    return e164


def parsed(e164: str) -> tuple[phonenumbers.PhoneNumber, int] | None:
    """A normalized number as libphonenumber reads it (for a +521 number, the same number
    without the 1) and its type (a `PhoneNumberType`); None when it does not parse."""
    found = _parsed.get(e164)
    if found is None:
        try:
            number = phonenumbers.parse(e164, None)
        except phonenumbers.NumberParseException:
            return None
        found = number, phonenumbers.number_type(number)
    return found


def region_of(e164: str) -> str | None:
    """Two-letter country of a normalized number, or None."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.region_code_for_number(parsed)


# --- one subscriber, several spellings -------------------------------------------------------
#
# Some countries' numbers reach the same subscriber written two ways. Mexico dropped the '1'
# that once followed +52 for mobiles (2019): +52 1 55 1234 5678 and +52 55 1234 5678 are one
# person, and customers' systems hold both. Every comparison of numbers (opt-outs, threads,
# filters, the dedupe of a send's recipients, the sequential-number guard) compares subscriber
# keys; the number itself is kept and returned as it was written.


@dataclass(frozen=True)
class Equivalence:
    """Numbers `variant` + `digits` digits are the subscriber `canonical` + the same digits."""

    country: str
    canonical: str
    variant: str
    digits: int


EQUIVALENCES = (Equivalence("MX", "+52", "+521", 10),)


def subscriber(number: str) -> str:
    """The subscriber key of a normalized number: its E.164 form without a country's legacy
    spelling (for Mexico, without the mobile '1'). Anything else (a short code, a sender's
    name, an encrypted number) is its own key."""
    for rule in EQUIVALENCES:
        if (
            len(number) == len(rule.variant) + rule.digits
            and number.startswith(rule.variant)
            and number[len(rule.variant) :].isdigit()
        ):
            return rule.canonical + number[len(rule.variant) :]
    return number


def spellings(number: str) -> tuple[str, ...]:
    """Every way the subscriber of `number` may be stored: its key first, then its variants
    (what a filter on the number as written must match)."""
    key = subscriber(number)
    forms = [key]
    for rule in EQUIVALENCES:
        rest = key[len(rule.canonical) :]
        if key.startswith(rule.canonical) and len(rest) == rule.digits and rest.isdigit():
            forms.append(rule.variant + rest)
    return tuple(forms)
