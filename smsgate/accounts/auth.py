"""Request authentication: Bearer sk_/at_ or the session cookie (with CSRF), and scope checks.

Authentication runs in its own short transaction (or not at all, when the credential is in the
in-process cache), apart from the request's unit of work, so a hot path never holds a database
connection just to learn who is calling.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.accounts import scopes, service, tokens
from smsgate.accounts.cache import credentials, passwords
from smsgate.accounts.service import Principal
from smsgate.billing import plans
from smsgate.config import Settings
from smsgate.errors import ApiError
from smsgate.kit import logs
from smsgate.kit.crypto import equal
from smsgate.kit.i18n import Text, t
from smsgate.storage.db import Database, commit

SESSION_COOKIE = "smsgate_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_NO_CREDENTIALS = t(
    "authentication required: send Authorization: Bearer sk_... (an API key) or "
    "Bearer at_... (an access token), or log in"
)


def set_session_cookie(response: Response, raw: str, settings: Settings) -> None:
    """The login cookie: HttpOnly, SameSite=Lax, Secure when the public URL is https."""
    response.set_cookie(
        SESSION_COOKIE,
        raw,
        max_age=settings.session_ttl_seconds,
        httponly=True,
        samesite="lax",
        secure=bool(settings.cookie_secure),
        path="/",
    )


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_settings)]


def _unauthorized(message: str | Text, code: str = "unauthorized") -> ApiError:
    return ApiError(401, message, code, headers={"WWW-Authenticate": "Bearer"})


def _bearer(header: str) -> str:
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise _unauthorized(
            t("unsupported Authorization header: use Bearer sk_... or Bearer at_...")
        )
    if value.startswith(tokens.REFRESH_PREFIX):
        raise _unauthorized(
            t(
                "a refresh token cannot authorize requests; exchange it for an access token at "
                "POST /api/auth/token/refresh"
            ),
            "invalid_token",
        )
    if not value.startswith((service.KEY_PREFIX, tokens.ACCESS_PREFIX)):
        raise _unauthorized(
            t("unknown credential: API keys start with sk_ and access tokens with at_")
        )
    return value


async def _look_up(request: Request, credential: str, is_cookie: bool) -> Principal | None:
    database: Database = request.app.state.db

    async def find(session: AsyncSession) -> Principal | None:
        if is_cookie:
            return await service.principal_from_session(session, credential)
        if credential.startswith(service.KEY_PREFIX):
            return await service.principal_from_key(session, credential)
        return await service.principal_from_access_token(session, credential, get_settings(request))

    async def load() -> Principal | None:
        # A busy credential is reloaded every second (the cache's ttl): read it without taking
        # SQLite's write lock, which would hold up the send writer. Only when the look-up has
        # something to record (a key's lastUsedAt, once a minute) is it made again in a
        # transaction that writes.
        async with database.reading() as session:
            principal = await find(session)
            if not session.dirty:
                return principal
        async with database.transaction() as session:
            return await find(session)

    return await credentials.get_or_load(credential, load)


async def basic_principal(request: Request, credential: str) -> Principal:
    """The account of HTTP Basic credentials (`email:password`, base64), for the third-party
    API. A wrong password is counted (its own transaction) before the 401."""
    try:
        raw = base64.b64decode(credential, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(401, t("malformed Basic credentials"), "unauthorized") from exc
    try:
        decoded = raw.decode()
    except UnicodeDecodeError:
        # RFC 7617 leaves the charset to the client: browsers and JavaScript's btoa (the npm
        # SDK) send ISO-8859-1, which decodes any bytes
        decoded = raw.decode("latin-1")
    email, _, password = decoded.partition(":")
    database: Database = request.app.state.db
    client = request.client.host if request.client else "unknown"

    async def load() -> Principal | None:
        async with database.sessions() as session:
            try:
                principal = await service.principal_from_password(
                    session,
                    email=email,
                    password=password,
                    client=client,
                    settings=get_settings(request),
                )
            except ApiError:
                await commit(session)  # the failure is counted
                raise
            await commit(session)
        return principal

    principal = await passwords.get_or_load(credential, load)
    assert principal is not None
    return principal


async def current_principal(request: Request) -> Principal:
    header = request.headers.get("authorization")
    if header is not None:
        credential = _bearer(header)
        try:
            principal = await _look_up(request, credential, is_cookie=False)
        except ApiError as exc:
            if exc.status == 401:
                await _count_bad_credential(request)
            raise
        assert principal is not None
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        found = await _look_up(request, cookie, is_cookie=True) if cookie else None
        if found is None:
            raise _unauthorized(_NO_CREDENTIALS)
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or found.csrf_token is None or not equal(sent, found.csrf_token):
                raise ApiError(
                    403,
                    t(
                        "missing or wrong {csrf_header} header: send the csrfToken from the login "
                        "answer",
                        csrf_header=CSRF_HEADER,
                    ),
                    "csrf_failed",
                )
        principal = found
    request.state.principal = principal
    logs.account_id.set(principal.account_id)
    await rate_limit(request, principal)
    return principal


async def _count_bad_credential(request: Request) -> None:
    """An address that keeps presenting keys or tokens that do not work is answered 429 past
    SMSGATE_BAD_CREDENTIALS_PER_MINUTE (a guesser, or a client with a revoked key in a loop);
    its good credentials are never counted."""
    settings = get_settings(request)
    address = request.client.host if request.client else "unknown"
    decision = await request.app.state.rate_limiter.hit(
        f"bad-credentials:{address}", settings.bad_credentials_per_minute
    )
    if not decision.allowed:
        raise ApiError(
            429,
            t(
                "too many requests with a key or token that does not work; retry in {retry_after} "
                "s",
                retry_after=decision.retry_after,
            ),
            "too_many_attempts",
            headers={"Retry-After": str(decision.retry_after)},
        )


async def rate_limit(request: Request, principal: Principal) -> None:
    """Count the request against the account's per-minute budget (the plan's): one for all its
    API keys and access tokens together (minting more tokens or keys buys no more requests),
    and one for its browser sessions (the dashboard, and API calls made with the cookie)."""
    settings = get_settings(request)
    plan = plans.get(principal.plan, settings.plans_file, settings.default_plan)
    if plan.requests_per_minute is None:
        return
    limiter = request.app.state.rate_limiter
    budget = "browser" if principal.kind == "session" else "api"
    decision = await limiter.hit(f"{principal.account_id}:{budget}", plan.requests_per_minute)
    request.state.rate_limit = decision
    if not decision.allowed:
        raise ApiError(
            429,
            t(
                "this account may make {limit} requests a minute through the {budget} (plan "
                "{plan_name}); retry in {retry_after} s",
                limit=decision.limit,
                budget=budget,
                plan_name=plan.name,
                retry_after=decision.retry_after,
            ),
            "rate_limited",
            headers=decision.headers(),
        )


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def session_principal(principal: CurrentPrincipal) -> Principal:
    """Routes only a person logged in may use (the OpenAPI document lists `session` alone for
    every route that depends on this: smsgate/ops/openapi.py)."""
    if principal.kind != "session":
        raise ApiError(
            403,
            t(
                "only a logged-in session may do this (POST /api/auth/login), not an API key or "
                "token"
            ),
            "session_required",
        )
    return principal


SessionPrincipal = Annotated[Principal, Depends(session_principal)]


class Scope:
    """Dependency that admits a principal only if its credential carries `name`."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, principal: CurrentPrincipal) -> Principal:
        return require_scope(principal, self.name)


def require_scope(principal: Principal, name: str) -> Principal:
    if name not in principal.scopes:
        raise ApiError(
            403,
            t('this credential lacks the "{name}" scope; create a key or token with it', name=name),
            "insufficient_scope",
        )
    return principal


async def authorize(request: Request, scope: str) -> Principal:
    """What `Depends(Scope(scope))` does, for a hot route that takes no dependencies."""
    return require_scope(await current_principal(request), scope)


SendScope = Annotated[Principal, Depends(Scope(scopes.SEND))]
ReadMessagesScope = Annotated[Principal, Depends(Scope(scopes.READ_MESSAGES))]
DevicesScope = Annotated[Principal, Depends(Scope(scopes.DEVICES))]
WebhooksScope = Annotated[Principal, Depends(Scope(scopes.WEBHOOKS))]
KeysScope = Annotated[Principal, Depends(Scope(scopes.KEYS))]
BillingScope = Annotated[Principal, Depends(Scope(scopes.BILLING))]
