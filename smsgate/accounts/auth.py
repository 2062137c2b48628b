"""Request authentication: Bearer sk_/at_ or the session cookie (with CSRF), and scope checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from smsgate.accounts import scopes, service, tokens
from smsgate.accounts.service import Principal
from smsgate.config import Settings
from smsgate.errors import ApiError
from smsgate.kit.crypto import equal
from smsgate.storage.db import DbSession

SESSION_COOKIE = "smsgate_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_NO_CREDENTIALS = (
    "authentication required: send Authorization: Bearer sk_... (an API key) or "
    "Bearer at_... (an access token), or log in"
)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_settings)]


async def current_principal(
    request: Request, session: DbSession, settings: AppSettings
) -> Principal:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise ApiError(
                401,
                "unsupported Authorization header: use Bearer sk_... or Bearer at_...",
                "unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if value.startswith(service.KEY_PREFIX):
            principal = await service.principal_from_key(session, value)
        elif value.startswith(tokens.ACCESS_PREFIX):
            principal = await service.principal_from_access_token(session, value, settings)
        elif value.startswith(tokens.REFRESH_PREFIX):
            raise ApiError(
                401,
                "a refresh token cannot authorize requests; exchange it for an access token at "
                "POST /api/auth/token/refresh",
                "invalid_token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        else:
            raise ApiError(
                401,
                "unknown credential: API keys start with sk_ and access tokens with at_",
                "unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
        request.state.principal = principal
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    found = await service.principal_from_session(session, cookie) if cookie else None
    if found is None:
        raise ApiError(401, _NO_CREDENTIALS, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or found.csrf_token is None or not equal(sent, found.csrf_token):
            raise ApiError(
                403,
                f"missing or wrong {CSRF_HEADER} header: send the csrfToken from the login answer",
                "csrf_failed",
            )
    request.state.principal = found
    return found


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


class Scope:
    """Dependency that admits a principal only if its credential carries `name`."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, principal: CurrentPrincipal) -> Principal:
        if self.name not in principal.scopes:
            raise ApiError(
                403,
                f'this credential lacks the "{self.name}" scope; create a key or token with it',
                "insufficient_scope",
            )
        return principal


SendScope = Annotated[Principal, Depends(Scope(scopes.SEND))]
ReadMessagesScope = Annotated[Principal, Depends(Scope(scopes.READ_MESSAGES))]
DevicesScope = Annotated[Principal, Depends(Scope(scopes.DEVICES))]
WebhooksScope = Annotated[Principal, Depends(Scope(scopes.WEBHOOKS))]
KeysScope = Annotated[Principal, Depends(Scope(scopes.KEYS))]
BillingScope = Annotated[Principal, Depends(Scope(scopes.BILLING))]
