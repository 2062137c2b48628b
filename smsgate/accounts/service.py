"""Accounts and credentials: signup, login, sessions, API keys, access and refresh tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Literal

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.accounts import cache, passwords, preferences, scopes, throttle, tokens
from smsgate.accounts.models import (
    Account,
    ApiKey,
    RefreshToken,
    RevokedToken,
    WebSession,
)
from smsgate.config import Settings
from smsgate.errors import ApiError, bad_request, not_found
from smsgate.kit import clock
from smsgate.kit.crypto import checksum_ok, opaque_token, token_hash, with_checksum
from smsgate.kit.i18n import Text, t
from smsgate.kit.ids import is_id
from smsgate.storage.db import after_commit
from smsgate.storage.tenancy import of_account, owned

KEY_PREFIX = "sk_"
KEY_BODY_LENGTH = 32
KEY_SHOWN_PREFIX_LENGTH = len(KEY_PREFIX) + 8
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    """Who is calling, with what rights, through which credential."""

    account_id: str
    scopes: frozenset[str]
    kind: Literal["key", "token", "session"]
    credential_id: str
    region: str
    csrf_token: str | None = None
    expires_at: datetime | None = None
    plan: str = ""
    anchor: datetime | None = None  # the account's creation: its billing periods start then
    countries: frozenset[str] = frozenset()  # where it may send; empty: its own region
    time_zone: str = "UTC"  # the account's (IANA name): the dashboard's times are in it


# --- accounts -------------------------------------------------------------------------------


def normalize_email(raw: str, field: str = "email") -> str:
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise bad_request(
            t('{field}: "{raw}" is not a valid email address', field=field, raw=raw),
            "invalid_email",
            field,
        ) from exc


async def create_account(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    name: str | None,
    plan: str,
    region: str,
) -> Account:
    email = normalize_email(email)
    passwords.check_rules(password, email)
    existing = await session.execute(select(Account.id).where(Account.email == email))
    if existing.first() is not None:
        raise ApiError(
            409,
            t("an account with email {email} already exists; log in instead", email=email),
            "email_taken",
        )
    account = Account(
        email=email,
        name=(name or "").strip(),
        password_hash=await passwords.hash_password(password),
        plan=plan,
        region=region,
    )
    session.add(account)
    await session.flush()
    return account


async def get_account(session: AsyncSession, account_id: str) -> Account:
    account = await session.get(Account, account_id)
    if account is None:
        raise not_found("account")
    return account


async def find_account(session: AsyncSession, email_or_id: str) -> Account | None:
    if is_id(email_or_id):
        return await session.get(Account, email_or_id)
    email = email_or_id.strip().lower()
    return (await session.execute(select(Account).where(Account.email == email))).scalar()


async def list_accounts(session: AsyncSession) -> list[Account]:
    return list((await session.execute(select(Account).order_by(Account.id))).scalars())


async def set_plan(session: AsyncSession, account: Account, plan: str) -> None:
    account.plan = plan
    await session.flush()


# --- sessions and login ---------------------------------------------------------------------


async def start_session(
    session: AsyncSession, account: Account, settings: Settings
) -> tuple[str, WebSession]:
    raw = opaque_token()
    web_session = WebSession(
        account_id=account.id,
        token_hash=token_hash(raw),
        csrf_token=opaque_token(),
        expires_at=clock.now() + timedelta(seconds=settings.session_ttl_seconds),
    )
    session.add(web_session)
    await session.flush()
    return raw, web_session


ACCOUNT_GUESS_FACTOR = 10  # failed logins to one account, from anywhere, per address's limit


def login_rules(email: str, client: str, settings: Settings) -> list[throttle.Rule]:
    """The throttles of a password check: this address on this account, and the account from
    every address at once (guesses spread over many addresses)."""
    email = email.strip().lower()
    return [
        throttle.Rule(
            f"{email}|{client}", settings.login_max_failures, settings.login_lockout_seconds
        ),
        throttle.Rule(f"account|{email}", *_account_limits(settings)),
    ]


def _account_limits(settings: Settings) -> tuple[int, int]:
    return settings.login_max_failures * ACCOUNT_GUESS_FACTOR, settings.login_lockout_seconds


async def login(
    session: AsyncSession, *, email: str, password: str, client: str, settings: Settings
) -> Account:
    """Check credentials; after repeated failures refuse for a growing time (429), per address
    and per account."""
    rules = login_rules(email, client, settings)
    await throttle.check(session, rules, t("logins"))
    account = (
        await session.execute(select(Account).where(Account.email == email.strip().lower()))
    ).scalar()
    ok = await passwords.verify_password(account.password_hash if account else None, password)
    if account is not None and ok:
        await throttle.succeeded(session, rules[:1])
        if account.suspended_at is not None:
            raise ApiError(
                403, t("this account is suspended; contact the operator"), "account_suspended"
            )
        return account
    await throttle.failed(session, rules)
    raise ApiError(401, t("wrong email or password"), "invalid_credentials", keep_changes=True)


def forget_cached(session: AsyncSession, account_id: str) -> None:
    """Once the revocation commits, stop honouring this account's cached credentials."""
    after_commit(session, partial(cache.forget_account, account_id))


async def end_session(session: AsyncSession, account_id: str, session_id: str) -> None:
    forget_cached(session, account_id)
    await session.execute(
        update(WebSession)
        .where(WebSession.id == session_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )


async def change_password(
    session: AsyncSession,
    account: Account,
    current: str,
    new: str,
    keep_session_id: str | None,
    settings: Settings,
) -> None:
    """Change the password and sign out every other session and every token. A wrong current
    password counts as a failed guess at the account (a stolen session or device token must not
    search the password through here)."""
    rules = [throttle.Rule(f"account|{account.email}", *_account_limits(settings))]
    await throttle.check(session, rules, t("password checks"))
    if not await passwords.verify_password(account.password_hash, current):
        await throttle.failed(session, rules)
        raise ApiError(
            403,
            t("currentPassword: is not your current password"),
            "invalid_credentials",
            keep_changes=True,
        )
    await set_password(session, account, new, keep_session_id, field="newPassword")


async def set_password(
    session: AsyncSession,
    account: Account,
    new: str,
    keep_session_id: str | None = None,
    field: str = "password",
) -> None:
    """Set a new password (it must pass the rules) and sign out every session but
    `keep_session_id` and every token: the owner's change, or an operator's reset."""
    passwords.check_rules(new, account.email, field)
    account.password_hash = await passwords.hash_password(new)
    account.token_epoch += 1
    forget_cached(session, account.id)
    now = clock.now()
    sessions_query = update(WebSession).where(
        WebSession.account_id == account.id, WebSession.revoked_at.is_(None)
    )
    if keep_session_id:
        sessions_query = sessions_query.where(WebSession.id != keep_session_id)
    await session.execute(sessions_query.values(revoked_at=now))
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.account_id == account.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await session.flush()


# --- API keys -------------------------------------------------------------------------------


async def create_key(
    session: AsyncSession, account_id: str, name: str, chosen: frozenset[str], settings: Settings
) -> tuple[ApiKey, str]:
    from smsgate.billing.service import ensure_room  # billing reads the accounts' tables

    await ensure_room(session, account_id, "api_keys", settings)
    raw = with_checksum(KEY_PREFIX, KEY_BODY_LENGTH)
    key = ApiKey(
        account_id=account_id,
        name=name,
        prefix=raw[:KEY_SHOWN_PREFIX_LENGTH],
        key_hash=token_hash(raw),
        scopes=scopes.dump(chosen),
    )
    session.add(key)
    await session.flush()
    return key, raw


async def list_keys(session: AsyncSession, account_id: str) -> list[ApiKey]:
    query = of_account(select(ApiKey), ApiKey, account_id).where(ApiKey.revoked_at.is_(None))
    return list((await session.execute(query.order_by(ApiKey.id.desc()))).scalars())


async def revoke_key(session: AsyncSession, account_id: str, key_id: str) -> None:
    key = (await session.execute(owned(select(ApiKey), ApiKey, account_id, key_id))).scalar()
    if key is None or key.revoked_at is not None:
        raise not_found("API key")
    key.revoked_at = clock.now()
    forget_cached(session, account_id)
    await session.flush()


# --- access and refresh tokens --------------------------------------------------------------


# --- authenticating a request ---------------------------------------------------------------


def _countries(account: Account) -> frozenset[str]:
    chosen = (account.settings or {}).get("allowedCountries")
    return frozenset(chosen) if chosen else frozenset({account.region})


def _unauthorized(message: str | Text, code: str = "unauthorized") -> ApiError:
    return ApiError(401, message, code, headers={"WWW-Authenticate": "Bearer"})


async def _active_account(session: AsyncSession, account_id: str) -> Account:
    account = await session.get(Account, account_id)
    if account is None or account.suspended_at is not None:
        raise _unauthorized(t("this credential's account no longer exists or is suspended"))
    return account


# sha256 of "email:password" -> the password hash it was verified against. Reloading a Basic
# credential (every cache ttl) then costs a read of the account, not another argon2 verification,
# and a changed password (a new hash) is verified afresh, so the old one stops working at once.
_verified: dict[str, str] = {}
MAX_VERIFIED = 20_000


async def principal_from_password(
    session: AsyncSession, *, email: str, password: str, client: str, settings: Settings
) -> Principal:
    """The principal of a Basic email:password credential (the third-party API)."""
    key = token_hash(f"{email}:{password}")
    account = (
        await session.execute(select(Account).where(Account.email == email.strip().lower()))
    ).scalar()
    if account is None or _verified.get(key) != account.password_hash:
        account = await login(
            session, email=email, password=password, client=client, settings=settings
        )
        if len(_verified) >= MAX_VERIFIED:
            _verified.clear()
        _verified[key] = account.password_hash
    elif account.suspended_at is not None:
        raise ApiError(
            403, t("this account is suspended; contact the operator"), "account_suspended"
        )
    return Principal(
        account.id,
        frozenset(scopes.ALL),
        "session",
        f"basic:{account.id}",
        account.region,
        plan=account.plan,
        anchor=account.created_at,
        countries=_countries(account),
        time_zone=preferences.time_zone_of(account),
    )


async def principal_from_key(session: AsyncSession, raw: str) -> Principal:
    if not checksum_ok(raw, KEY_PREFIX, KEY_BODY_LENGTH):
        raise _unauthorized(
            t("this API key is malformed (its checksum does not match); copy it again in full"),
            "invalid_api_key",
        )
    key = (await session.execute(select(ApiKey).where(ApiKey.key_hash == token_hash(raw)))).scalar()
    if key is None or key.revoked_at is not None:
        raise _unauthorized(t("this API key is unknown or was revoked"), "invalid_api_key")
    account = await _active_account(session, key.account_id)
    now = clock.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        key.last_used_at = now
    return Principal(
        key.account_id,
        scopes.load(key.scopes),
        "key",
        key.id,
        account.region,
        plan=account.plan,
        anchor=account.created_at,
        countries=_countries(account),
        time_zone=preferences.time_zone_of(account),
    )


async def principal_from_access_token(
    session: AsyncSession, raw: str, settings: Settings
) -> Principal:
    claims = tokens.decode_access_token(settings.secret_key, raw)
    ids = [claims.token_id] + ([claims.family_id] if claims.family_id else [])
    revoked = await session.execute(
        select(RevokedToken.token_id).where(RevokedToken.token_id.in_(ids)).limit(1)
    )
    if revoked.first() is not None:
        raise _unauthorized(t("this access token was revoked"), "invalid_token")
    account = await _active_account(session, claims.account_id)
    if claims.epoch != account.token_epoch:
        raise _unauthorized(
            t("this access token was issued before a password change; request a new one"),
            "invalid_token",
        )
    return Principal(
        claims.account_id,
        claims.scopes,
        "token",
        claims.token_id,
        account.region,
        expires_at=claims.expires_at,
        plan=account.plan,
        anchor=account.created_at,
        countries=_countries(account),
        time_zone=preferences.time_zone_of(account),
    )


async def principal_from_session(session: AsyncSession, raw: str) -> Principal | None:
    row = (
        await session.execute(select(WebSession).where(WebSession.token_hash == token_hash(raw)))
    ).scalar()
    if row is None or row.revoked_at is not None or row.expires_at <= clock.now():
        return None
    account = await _active_account(session, row.account_id)
    return Principal(
        row.account_id,
        frozenset(scopes.ALL),
        "session",
        row.id,
        account.region,
        row.csrf_token,
        row.expires_at,
        plan=account.plan,
        anchor=account.created_at,
        countries=_countries(account),
        time_zone=preferences.time_zone_of(account),
    )
