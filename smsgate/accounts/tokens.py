"""Access tokens: at_ + a JWT with a pinned algorithm, audience, issuer and type."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from smsgate.errors import ApiError
from smsgate.kit import clock
from smsgate.kit.crypto import derive_key

ACCESS_PREFIX = "at_"
REFRESH_PREFIX = "rt_"
ALGORITHM = "HS256"
AUDIENCE = "smsgate-api"
ISSUER = "smsgate"
TOKEN_TYPE = "at+jwt"  # noqa: S105 (a JWT type, not a secret)


@dataclass(frozen=True)
class AccessClaims:
    account_id: str
    token_id: str
    family_id: str
    scopes: frozenset[str]
    epoch: int
    expires_at: datetime


def _key(secret: str) -> bytes:
    return derive_key(secret, "access-token/v1")


def issue_access_token(
    secret: str,
    *,
    account_id: str,
    token_id: str,
    family_id: str,
    scopes: frozenset[str],
    epoch: int,
    ttl_seconds: int,
) -> tuple[str, datetime]:
    issued = clock.now()
    expires = issued + timedelta(seconds=ttl_seconds)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": account_id,
        "jti": token_id,
        "fam": family_id,
        "scope": " ".join(sorted(scopes)),
        "ep": epoch,
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
    }
    token = jwt.encode(claims, _key(secret), algorithm=ALGORITHM, headers={"typ": TOKEN_TYPE})
    return ACCESS_PREFIX + token, expires.replace(microsecond=0)


def _invalid(message: str = "this access token is invalid; request a new one") -> ApiError:
    # RFC 6750: a refused bearer token says so in WWW-Authenticate, as every other 401 here
    return ApiError(
        401, message, "invalid_token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


def decode_access_token(secret: str, token: str) -> AccessClaims:
    if not token.startswith(ACCESS_PREFIX):
        raise _invalid()
    raw = token[len(ACCESS_PREFIX) :]
    try:
        header = jwt.get_unverified_header(raw)
    except jwt.PyJWTError as exc:
        raise _invalid() from exc
    if header.get("typ") != TOKEN_TYPE or header.get("alg") != ALGORITHM:
        raise _invalid()
    now = clock.now()
    try:
        claims = jwt.decode(
            raw,
            _key(secret),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={
                "require": ["exp", "iat", "sub", "jti", "aud", "iss"],
                "verify_exp": False,  # checked below against our clock
            },
        )
    except jwt.PyJWTError as exc:
        raise _invalid() from exc
    try:
        expires_at = datetime.fromtimestamp(int(claims["exp"]), tz=now.tzinfo)
        result = AccessClaims(
            account_id=str(claims["sub"]),
            token_id=str(claims["jti"]),
            family_id=str(claims.get("fam", "")),
            scopes=frozenset(str(claims.get("scope", "")).split()),
            epoch=int(claims.get("ep", 0)),
            expires_at=expires_at,
        )
    except (TypeError, ValueError) as exc:
        raise _invalid() from exc
    if expires_at <= now:
        raise _invalid(
            "this access token has expired; get a new one with POST /api/auth/token/refresh"
        )
    return result
