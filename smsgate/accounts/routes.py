"""HTTP endpoints of accounts, sessions, API keys and tokens."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from smsgate.accounts import access, schemas, scopes, service
from smsgate.accounts.auth import (
    SESSION_COOKIE,
    AppSettings,
    CurrentPrincipal,
    KeysScope,
    SessionPrincipal,
    set_session_cookie,
)
from smsgate.accounts.models import Account
from smsgate.errors import ApiError
from smsgate.kit.i18n import t
from smsgate.kit.responses import api_router
from smsgate.storage.db import DbSession, ReadSession

router = api_router()


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _open_session(
    response: Response, account: Account, session: DbSession, settings: AppSettings
) -> dict[str, Any]:
    raw, web_session = await service.start_session(session, account, settings)
    set_session_cookie(response, raw, settings)
    return {"account": schemas.account_out(account), "csrfToken": web_session.csrf_token}


@router.post("/api/auth/signup", status_code=201)
async def signup(
    body: schemas.SignupIn, response: Response, session: DbSession, settings: AppSettings
) -> dict[str, Any]:
    if not settings.signup_enabled:
        raise ApiError(
            403, t("sign-up is disabled on this server; ask its operator"), "signup_disabled"
        )
    account = await service.create_account(
        session,
        email=body.email,
        password=body.password,
        name=body.name,
        plan=settings.default_plan,
        region=settings.default_region,
    )
    return await _open_session(response, account, session, settings)


@router.post("/api/auth/login")
async def login(
    body: schemas.LoginIn,
    request: Request,
    response: Response,
    session: DbSession,
    settings: AppSettings,
) -> dict[str, Any]:
    account = await service.login(
        session,
        email=body.email,
        password=body.password,
        client=_client(request),
        settings=settings,
    )
    return await _open_session(response, account, session, settings)


@router.post("/api/auth/logout")
async def logout(
    principal: CurrentPrincipal, response: Response, session: DbSession
) -> dict[str, Any]:
    if principal.kind == "session":
        await service.end_session(session, principal.account_id, principal.credential_id)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"ok": True}


@router.get("/api/auth/me")
async def me(principal: CurrentPrincipal, session: ReadSession) -> dict[str, Any]:
    account = await service.get_account(session, principal.account_id)
    out = schemas.account_out(account)
    out["authenticatedBy"] = principal.kind
    out["scopes"] = sorted(principal.scopes)
    return out


@router.post("/api/auth/password")
async def change_password(
    body: schemas.PasswordChangeIn,
    principal: SessionPrincipal,
    session: DbSession,
    settings: AppSettings,
) -> dict[str, Any]:
    account = await service.get_account(session, principal.account_id)
    await service.change_password(
        session,
        account,
        body.current_password,
        body.new_password,
        principal.credential_id,
        settings,
    )
    return {"ok": True}


@router.get("/api/auth/scopes")
async def list_scopes() -> dict[str, Any]:
    return {"data": [{"name": name, "description": text} for name, text in scopes.ALL.items()]}


@router.post("/api/keys", status_code=201)
async def create_key(
    body: schemas.KeyCreateIn, principal: KeysScope, session: DbSession, settings: AppSettings
) -> dict[str, Any]:
    chosen = scopes.parse(body.scopes)
    if not chosen <= principal.scopes:
        raise ApiError(403, t("a key cannot carry scopes its creator lacks"), "insufficient_scope")
    key, raw = await service.create_key(
        session, principal.account_id, body.name.strip(), chosen, settings
    )
    out = schemas.key_out(key)
    out["key"] = raw
    return out


@router.get("/api/keys")
async def list_keys(principal: KeysScope, session: ReadSession) -> dict[str, Any]:
    keys = await service.list_keys(session, principal.account_id)
    return {"data": [schemas.key_out(k) for k in keys], "nextCursor": None}


@router.delete("/api/keys/{key_id}")
async def revoke_key(key_id: str, principal: KeysScope, session: DbSession) -> dict[str, Any]:
    await service.revoke_key(session, principal.account_id, key_id)
    return {"id": key_id, "revoked": True}


@router.post("/api/auth/token", status_code=201)
async def issue_token(
    principal: SessionPrincipal,
    session: DbSession,
    settings: AppSettings,
    body: schemas.TokenIn | None = None,
) -> dict[str, Any]:
    body = body or schemas.TokenIn()
    account = await service.get_account(session, principal.account_id)
    pair = await access.issue_tokens(
        session, account, settings, chosen=scopes.parse(body.scopes), ttl=body.ttl
    )
    return schemas.token_pair_out(pair)


@router.post("/api/auth/token/refresh")
async def refresh_token(
    body: schemas.RefreshIn, session: DbSession, settings: AppSettings
) -> dict[str, Any]:
    pair = await access.refresh_tokens(session, body.refresh_token, settings)
    return schemas.token_pair_out(pair)


@router.post("/api/auth/token/revoke")
async def revoke_token(
    body: schemas.RevokeIn, principal: KeysScope, session: DbSession, settings: AppSettings
) -> dict[str, Any]:
    await access.revoke_token(session, principal, body.token, settings)
    return {"revoked": True}


@router.get("/api/auth/tokens")
async def list_tokens(principal: KeysScope, session: ReadSession) -> dict[str, Any]:
    families = await access.list_token_families(session, principal.account_id)
    return {"data": [schemas.token_family_out(f) for f in families], "nextCursor": None}


@router.delete("/api/auth/tokens/{token_id}")
async def revoke_token_by_id(
    token_id: str, principal: KeysScope, session: DbSession
) -> dict[str, Any]:
    await access.revoke_family_by_id(session, principal.account_id, token_id)
    return {"id": token_id, "revoked": True}
