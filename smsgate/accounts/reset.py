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


async def ask(
    session: AsyncSession, settings: Settings, email: str, client: str, lang: str
) -> None:
    """Email a reset link to the account with this email, if there is one (the caller answers
    the same either way); 429 when this email or address asked too often."""
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
        return
    link = f"{settings.public_url.rstrip('/')}/reset?token={token(settings, account)}"
    words = {
        "subject": i18n.render(t("Reset your SMSGate password"), lang),
        "body": i18n.render(
            t(
                "Someone (we hope you) asked to reset the password of {email} on SMSGate.\n\n"
                "Open this link within an hour to choose a new one; it works once:\n{link}\n\n"
                "If it was not you, ignore this email: your password stays as it is.",
                email=account.email,
                link=link,
            ),
            lang,
        ),
    }
    sender = settings.mail_from or f"SMSGate <no-reply@{settings.host}>"
    try:
        await mail.send(settings.smtp_url, sender, account.email, words["subject"], words["body"])
    except mail.MailFailed as exc:
        log.error("the password reset email to account %s was not sent: %s", account.id, exc)
        raise ApiError(
            503,
            t("the email could not be sent now; try again later"),
            "mail_unavailable",
            keep_changes=True,
        ) from exc
