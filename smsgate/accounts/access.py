"""Access and refresh tokens: issued in families, refreshed by rotation (a token presented
again revokes its family), listed and revoked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.accounts import scopes, throttle, tokens
from smsgate.accounts.models import (
    Account,
    LoginThrottle,
    RefreshToken,
    RevokedToken,
)
from smsgate.accounts.service import Principal, forget_cached, get_account
from smsgate.config import Settings
from smsgate.errors import ApiError, bad_request, not_found
from smsgate.kit import clock
from smsgate.kit.crypto import opaque_token, token_hash
from smsgate.kit.i18n import t
from smsgate.kit.ids import is_id, new_id
from smsgate.storage.tenancy import of_account

MIN_ACCESS_TTL = 60


MAX_ACCESS_TTL = 24 * 3600


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_at: datetime
    refresh_expires_at: datetime
    scopes: frozenset[str]
    family_id: str


async def _issue_pair(
    session: AsyncSession,
    account: Account,
    settings: Settings,
    *,
    chosen: frozenset[str],
    access_ttl: int,
    family_id: str,
    expires_at: datetime | None = None,
) -> TokenPair:
    raw_refresh = opaque_token(tokens.REFRESH_PREFIX)
    refresh_expires = expires_at or clock.now() + timedelta(
        seconds=settings.refresh_token_ttl_seconds
    )
    session.add(
        RefreshToken(
            account_id=account.id,
            family_id=family_id,
            token_hash=token_hash(raw_refresh),
            scopes=scopes.dump(chosen),
            access_ttl_seconds=access_ttl,
            expires_at=refresh_expires,
        )
    )
    access, access_expires = tokens.issue_access_token(
        settings.secret_key,
        account_id=account.id,
        token_id=new_id(),
        family_id=family_id,
        scopes=chosen,
        epoch=account.token_epoch,
        ttl_seconds=access_ttl,
    )
    await session.flush()
    return TokenPair(access, raw_refresh, access_expires, refresh_expires, chosen, family_id)


def check_access_ttl(ttl: int | None, settings: Settings) -> int:
    if ttl is None:
        return settings.access_token_ttl_seconds
    if not MIN_ACCESS_TTL <= ttl <= MAX_ACCESS_TTL:
        raise bad_request(
            t(
                "ttl: must be between {min_access_ttl} and {max_access_ttl} seconds",
                min_access_ttl=MIN_ACCESS_TTL,
                max_access_ttl=MAX_ACCESS_TTL,
            ),
            field="ttl",
        )
    return ttl


async def issue_tokens(
    session: AsyncSession,
    account: Account,
    settings: Settings,
    *,
    chosen: frozenset[str],
    ttl: int | None,
) -> TokenPair:
    access_ttl = check_access_ttl(ttl, settings)
    return await _issue_pair(
        session, account, settings, chosen=chosen, access_ttl=access_ttl, family_id=new_id()
    )


async def _revoke_family(session: AsyncSession, account_id: str, family_id: str) -> None:
    """Refuse every refresh token of the family and every access token it issued."""
    forget_cached(session, account_id)
    now = clock.now()
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if await session.get(RevokedToken, family_id) is None:
        session.add(
            RevokedToken(
                token_id=family_id,
                account_id=account_id,
                expires_at=now + timedelta(seconds=MAX_ACCESS_TTL),
            )
        )
    await session.flush()


async def refresh_tokens(session: AsyncSession, raw: str, settings: Settings) -> TokenPair:
    """Rotate: the presented token stops working; presenting a used one kills its family."""
    invalid = ApiError(
        401, t("this refresh token is invalid or expired; log in again"), "invalid_token"
    )
    if not raw.startswith(tokens.REFRESH_PREFIX):
        raise invalid
    row = (
        await session.execute(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash(raw))
        )
    ).scalar()
    now = clock.now()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise invalid
    claimed = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == row.id,
            RefreshToken.rotated_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(rotated_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        await _revoke_family(session, row.account_id, row.family_id)
        raise ApiError(
            401,
            t(
                "this refresh token was already used; every token of its family is now revoked, "
                "log in again"
            ),
            "token_reused",
            keep_changes=True,
        )
    account = await get_account(session, row.account_id)
    if account.suspended_at is not None:
        raise invalid
    return await _issue_pair(
        session,
        account,
        settings,
        chosen=scopes.load(row.scopes),
        access_ttl=row.access_ttl_seconds,
        family_id=row.family_id,
        expires_at=row.expires_at,
    )


async def revoke_token(
    session: AsyncSession, principal: Principal, raw: str, settings: Settings
) -> None:
    """Revoke an at_ token or the family of an rt_ token of the caller's own account."""
    if raw.startswith(tokens.REFRESH_PREFIX):
        row = (
            await session.execute(
                of_account(select(RefreshToken), RefreshToken, principal.account_id).where(
                    RefreshToken.token_hash == token_hash(raw)
                )
            )
        ).scalar()
        if row is None:
            raise not_found("token")
        await _revoke_family(session, principal.account_id, row.family_id)
        return
    if raw.startswith(tokens.ACCESS_PREFIX):
        try:
            claims = tokens.decode_access_token(settings.secret_key, raw)
        except ApiError as exc:
            raise not_found("token") from exc
        if claims.account_id != principal.account_id:
            raise not_found("token")
        forget_cached(session, principal.account_id)
        if await session.get(RevokedToken, claims.token_id) is None:
            session.add(
                RevokedToken(
                    token_id=claims.token_id,
                    account_id=principal.account_id,
                    expires_at=claims.expires_at,
                )
            )
            await session.flush()
        return
    raise bad_request(
        t("token: give an access token (at_...) or a refresh token (rt_...)"), field="token"
    )


@dataclass(frozen=True)
class TokenFamily:
    id: str
    scopes: frozenset[str]
    created_at: datetime
    last_refreshed_at: datetime
    expires_at: datetime


async def list_token_families(session: AsyncSession, account_id: str) -> list[TokenFamily]:
    """Live token families (one per POST /api/auth/token), newest first."""
    heads = list(
        (
            await session.execute(
                of_account(select(RefreshToken), RefreshToken, account_id)
                .where(
                    RefreshToken.revoked_at.is_(None),
                    RefreshToken.rotated_at.is_(None),
                    RefreshToken.expires_at > clock.now(),
                )
                .order_by(RefreshToken.family_id.desc())
            )
        ).scalars()
    )
    first_links = await session.execute(
        select(RefreshToken.family_id, func.min(RefreshToken.created_at))
        .where(RefreshToken.family_id.in_([h.family_id for h in heads]))
        .group_by(RefreshToken.family_id)
    )
    started = {family: created for family, created in first_links}
    return [
        TokenFamily(
            id=head.family_id,
            scopes=scopes.load(head.scopes),
            created_at=started.get(head.family_id, head.created_at),
            last_refreshed_at=head.created_at,
            expires_at=head.expires_at,
        )
        for head in heads
    ]


async def revoke_family_by_id(session: AsyncSession, account_id: str, family_id: str) -> None:
    if not is_id(family_id):
        raise not_found("token")
    row = (
        await session.execute(
            of_account(select(RefreshToken.id), RefreshToken, account_id)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .limit(1)
        )
    ).first()
    if row is None:
        raise not_found("token")
    await _revoke_family(session, account_id, family_id)


async def prune_expired(session: AsyncSession) -> None:
    """Forget revocations and throttles that can no longer matter."""
    now = clock.now()
    await session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now))
    await session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.window_started_at < now - throttle.MAX_LOCKOUT * 2,
            or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < now),
        )
    )
