"""The third-party API's access tokens: issued for some of their scopes, refreshed, revoked."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from smsgate.accounts import access
from smsgate.accounts import service as accounts
from smsgate.accounts.auth import AppSettings
from smsgate.compat import bodies
from smsgate.compat.caller import PREFIX, SCOPES, Caller, json_object, need
from smsgate.errors import ApiError, bad_request
from smsgate.kit import clock
from smsgate.kit.i18n import t
from smsgate.kit.responses import api_router
from smsgate.storage.db import DbSession

router = api_router(prefix=PREFIX, tags=["compat"])


def _token_out(pair: access.TokenPair) -> dict[str, Any]:
    """Both spellings: the reference and client-go read snake_case, the PyPI client camelCase."""
    expires = clock.iso(pair.expires_at)
    return {
        "id": pair.family_id,
        "token_type": "Bearer",
        "tokenType": "Bearer",
        "access_token": pair.access_token,
        "accessToken": pair.access_token,
        "refresh_token": pair.refresh_token,
        "refreshToken": pair.refresh_token,
        "expires_at": expires,
        "expiresAt": expires,
    }


@router.post("/auth/token", status_code=201, openapi_extra=bodies.token(SCOPES))
async def issue_token(
    request: Request, principal: Caller, session: DbSession, settings: AppSettings
) -> dict[str, Any]:
    need(principal, "tokens:manage")
    body = await json_object(request)
    requested = body.get("scopes")
    if not isinstance(requested, list) or not requested:
        raise bad_request(t("scopes: give at least one scope"), field="scopes")
    if not all(isinstance(s, str) for s in requested):
        raise bad_request(t("scopes: a list of scope names (strings)"), "invalid_scope", "scopes")
    unknown = [s for s in requested if s not in SCOPES]
    if unknown:
        raise bad_request(
            t("scopes: unknown scope {scope}", scope=unknown[0]), "invalid_scope", "scopes"
        )
    chosen = frozenset(SCOPES[s] for s in requested) & principal.scopes
    ttl = body.get("ttl") if isinstance(body.get("ttl"), int) else 0
    ttl = min(max(ttl, 60), settings.access_token_ttl_seconds) if ttl else None
    account = await accounts.get_account(session, principal.account_id)
    pair = await access.issue_tokens(session, account, settings, chosen=chosen, ttl=ttl)
    return _token_out(pair)


@router.post("/auth/token/refresh", status_code=201)
async def refresh_token(
    request: Request, session: DbSession, settings: AppSettings
) -> dict[str, Any]:
    """Bearer <refresh token>; the presented token stops working (rotation)."""
    scheme, _, raw = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise ApiError(401, t("send the refresh token as Authorization: Bearer"), "unauthorized")
    pair = await access.refresh_tokens(session, raw.strip(), settings)
    return _token_out(pair)


@router.delete("/auth/token/{token_id}", status_code=204)
async def revoke_token(token_id: str, principal: Caller, session: DbSession) -> Response:
    need(principal, "tokens:manage")
    try:
        await access.revoke_family_by_id(session, principal.account_id, token_id)
    except ApiError as exc:
        if exc.status != 404:
            raise
    return Response(status_code=204)
