"""Account flows that own their transactions (the dashboard's forms call them with no
request-wide session)."""

from __future__ import annotations

from smsgate.accounts import service
from smsgate.config import Settings
from smsgate.errors import ApiError
from smsgate.kit.i18n import t
from smsgate.storage.db import Database


async def sign_in(
    database: Database, settings: Settings, *, signup: bool, email: str, password: str, client: str
) -> str:
    """A new account (sign-up) or a checked password (login), and a session for it; the
    session's raw token. A wrong password is counted before the 401 (it commits), so repeated
    failures are refused for a growing time."""
    async with database.transaction() as session:
        if signup:
            if not settings.signup_enabled:
                raise ApiError(403, t("sign-up is disabled on this server"), "signup_disabled")
            account = await service.create_account(
                session,
                email=email,
                password=password,
                name=None,
                plan=settings.default_plan,
                region=settings.default_region,
            )
        else:
            account = await service.login(
                session, email=email, password=password, client=client, settings=settings
            )
        raw, _ = await service.start_session(session, account, settings)
    return raw
