"""Password reset by email: a link that works once, for an hour.

The link carries the account's id, its expiry and an HMAC over both and the account's current
password hash (with a key derived from the server's secret): nothing is stored, and the link
stops working as soon as the password changes, whoever changed it. Asking is throttled per
email and per address (accounts/throttle.py), and the answer is the same whether or not the
email has an account.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.accounts import throttle
from smsgate.accounts.models import Account
from smsgate.config import Settings
from smsgate.errors import ApiError
from smsgate.kit import clock, i18n, mail
from smsgate.kit.crypto import derive_key, equal
from smsgate.kit.i18n import t
from smsgate.storage.db import Database

log = logging.getLogger("smsgate.accounts.reset")

LIFETIME = timedelta(hours=1)
PER_EMAIL = 3  # links asked for one email within the throttle's window before it waits
PER_ADDRESS = 10


def _signature(settings: Settings, account: Account, payload: str) -> str:
    key = derive_key(settings.secret_key, "accounts/password-reset")
    signed = f"{payload}.{account.password_hash}".encode()
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def token(settings: Settings, account: Account) -> str:
    expires = int((clock.now() + LIFETIME).timestamp())
    payload = f"{account.id}.{expires}"
    encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    return f"{encoded}.{_signature(settings, account, payload)}"


def _invalid() -> ApiError:
    return ApiError(
        400,
        t("this reset link is not valid any more: ask for a new one"),
        "invalid_reset_link",
    )


async def account_of(session: AsyncSession, settings: Settings, raw: str) -> Account:
    """The account a link is for, if it is whole, unexpired and unused."""
    encoded, _, signature = raw.partition(".")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        account_id, expires = payload.split(".")
        expires_at = int(expires)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid() from exc
    if expires_at < clock.now().timestamp():
        raise _invalid()
    account = await session.get(Account, account_id)
    if account is None or not equal(signature, _signature(settings, account, payload)):
        raise _invalid()
    return account


@dataclass(frozen=True)
class Letter:
    """A reset email, written in the asker's language, to be sent once the request counted."""

    to: str
    subject: str
    body: str


async def ask(
    session: AsyncSession, settings: Settings, email: str, client: str, lang: str
) -> Letter | None:
    """Count a reset request against this email and address (429 when either asked too
    often) and write the link's email to the account with this email, if there is one (the
    caller answers the same either way). Nothing is sent here: the caller commits the count
    first (on SQLite a transaction holds the write lock) and then `send`s."""
    rules = [
        throttle.Rule(f"reset:{email.strip().lower()}", PER_EMAIL, 300),
        throttle.Rule(f"reset-address:{client}", PER_ADDRESS, 300),
    ]
    await throttle.check(session, rules, t("password reset requests"))
    await throttle.failed(session, rules)  # every request counts, sent or not
    account = (
        await session.execute(select(Account).where(Account.email == email.strip().lower()))
    ).scalar_one_or_none()
    if account is None:
        return None
    link = f"{settings.public_url.rstrip('/')}/reset?token={token(settings, account)}"
    subject = i18n.render(t("Reset your SMSGate password"), lang)
    body = i18n.render(
        t(
            "Someone (we hope you) asked to reset the password of {email} on SMSGate.\n\n"
            "Open this link within an hour to choose a new one; it works once:\n{link}\n\n"
            "If it was not you, ignore this email: your password stays as it is.",
            email=account.email,
            link=link,
        ),
        lang,
    )
    return Letter(account.email, subject, body)


async def request_link(
    database: Database, settings: Settings, email: str, client: str, lang: str
) -> None:
    """`ask`, counted in a transaction of its own, then the email sent (a slow mail server is
    waited on without the write lock)."""
    async with database.transaction() as session:
        letter = await ask(session, settings, email, client, lang)
    if letter is not None:
        await send(settings, letter)


async def send(settings: Settings, letter: Letter) -> None:
    """Hand the email to SMSGATE_SMTP_URL's server; 503 when it cannot be."""
    sender = settings.mail_from or f"SMSGate <no-reply@{settings.host}>"
    try:
        await mail.send(settings.smtp_url, sender, letter.to, letter.subject, letter.body)
    except mail.MailFailed as exc:
        log.error("a password reset email was not sent: %s", exc)
        raise ApiError(
            503, t("the email could not be sent now; try again later"), "mail_unavailable"
        ) from exc
