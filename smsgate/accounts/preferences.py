"""Account-wide preferences (`accounts.settings`, a JSON column): their names, what the API
shows of them, and the one function that changes them (the API's PATCH and the dashboard's
account page both call it). Other domains read a preference by its name here."""

from __future__ import annotations

from functools import partial
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.accounts import cache
from smsgate.accounts.models import Account
from smsgate.errors import bad_request
from smsgate.kit.i18n import t
from smsgate.kit.schema import Input
from smsgate.storage.db import after_commit

# sends with priority >= 100 pass the account's opt-out list
OPT_OUT_BYPASS_EXPEDITED = "optOutBypassExpedited"
# a message a phone took and never reported on goes to another phone of the account
REROUTE_STALLED = "rerouteStalled"
ALLOWED_COUNTRIES = "allowedCountries"
# the account's time zone (IANA name): every time the dashboard shows, and its day, is in it
TIME_ZONE = "timeZone"
# a new account's zone, from its region (the capital's); elsewhere UTC until the owner picks one
DEFAULT_ZONES = {
    "MX": "America/Mexico_City",
    "GT": "America/Guatemala",
    "SV": "America/El_Salvador",
    "HN": "America/Tegucigalpa",
    "NI": "America/Managua",
    "CR": "America/Costa_Rica",
    "PA": "America/Panama",
    "CO": "America/Bogota",
    "PE": "America/Lima",
    "EC": "America/Guayaquil",
    "VE": "America/Caracas",
    "BO": "America/La_Paz",
    "CL": "America/Santiago",
    "AR": "America/Argentina/Buenos_Aires",
    "UY": "America/Montevideo",
    "PY": "America/Asuncion",
    "DO": "America/Santo_Domingo",
    "ES": "Europe/Madrid",
}


class AccountSettingsPatch(Input):
    opt_out_bypass_expedited: bool | None = None
    reroute_stalled: bool | None = None
    allowed_countries: list[str] | None = Field(default=None, max_length=250)
    time_zone: str | None = Field(default=None, max_length=64)


def time_zone_of(account: Account) -> str:
    """The account's time zone: its choice, or its region's."""
    chosen = (account.settings or {}).get(TIME_ZONE)
    return str(chosen) if chosen else DEFAULT_ZONES.get(account.region, "UTC")


def zone(name: str) -> ZoneInfo:
    """The ZoneInfo of a stored name (UTC for one this machine no longer knows)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def settings_out(account: Account) -> dict[str, Any]:
    stored = account.settings or {}
    return {
        OPT_OUT_BYPASS_EXPEDITED: bool(stored.get(OPT_OUT_BYPASS_EXPEDITED)),
        ALLOWED_COUNTRIES: stored.get(ALLOWED_COUNTRIES) or [account.region],
        REROUTE_STALLED: bool(stored.get(REROUTE_STALLED)),
        TIME_ZONE: time_zone_of(account),
    }


async def change_settings(
    session: AsyncSession, account: Account, body: AccountSettingsPatch
) -> None:
    """Apply the preferences given."""
    current = dict(account.settings or {})
    if body.opt_out_bypass_expedited is not None:
        current[OPT_OUT_BYPASS_EXPEDITED] = body.opt_out_bypass_expedited
    if body.reroute_stalled is not None:
        current[REROUTE_STALLED] = body.reroute_stalled
    if body.allowed_countries is not None:
        chosen = []
        for index, code in enumerate(body.allowed_countries):
            code = code.strip().upper()
            if code not in phonenumbers.SUPPORTED_REGIONS:
                raise bad_request(
                    t(
                        'allowedCountries[{index}]: "{code}" is not a two-letter country code',
                        index=index,
                        code=code,
                    ),
                    field=f"allowedCountries[{index}]",
                )
            chosen.append(code)
        if not chosen:
            raise bad_request(
                t("allowedCountries: give at least one country"), field="allowedCountries"
            )
        current[ALLOWED_COUNTRIES] = sorted(set(chosen))
    if body.time_zone is not None:
        name = body.time_zone.strip()
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise bad_request(
                t(
                    'timeZone: "{zone}" is not an IANA time zone, such as America/Mexico_City',
                    zone=name,
                ),
                field="timeZone",
            ) from None
        current[TIME_ZONE] = name
    account.settings = current
    await session.flush()
    forget = partial(cache.forget_account, account.id)
    after_commit(session, forget)  # the send path reads these from the credential cache
