"""Signing in: log in, sign up, a forgotten password, log out."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from smsgate.accounts import flows, reset
from smsgate.accounts import service as accounts
from smsgate.accounts.auth import SESSION_COOKIE, AppSettings, set_session_cookie
from smsgate.config import Settings
from smsgate.dashboard.frame import (
    check_csrf as _check_csrf,
)
from smsgate.dashboard.frame import (
    login_redirect as _login_redirect,
)
from smsgate.dashboard.frame import (
    page as _page,
)
from smsgate.dashboard.frame import (
    principal_of as _principal,
)
from smsgate.dashboard.frame import (
    sentence as _sentence,
)
from smsgate.dashboard.i18n import LANGUAGES, language, translator
from smsgate.errors import ApiError
from smsgate.kit.crypto import derive_key, equal
from smsgate.kit.responses import api_router
from smsgate.storage.db import DbSession, ReadSession

router = api_router(include_in_schema=False)


PRESESSION_COOKIE = "smsgate_presession"


def _auth_page(
    request: Request, settings: Settings, mode: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """The login or sign-up form, with its CSRF field tied to a pre-session cookie (kept if the
    browser has one): a form posted from another site carries neither, so it cannot log a
    browser into someone else's account (login CSRF)."""
    return _presession_page(request, settings, "auth.html", status, mode=mode, **context)


def _presession_token(presession: str, settings: Settings) -> str:
    key = derive_key(settings.secret_key, "dashboard/login-csrf")
    return hmac.new(key, presession.encode(), hashlib.sha256).hexdigest()


@router.get("/login")
async def login_page(request: Request, settings: AppSettings) -> HTMLResponse:
    return _auth_page(request, settings, "login")


@router.get("/signup")
async def signup_page(request: Request, settings: AppSettings) -> HTMLResponse:
    return _auth_page(request, settings, "signup")


@router.post("/login")
@router.post("/signup")
async def auth_form(
    request: Request,
    settings: AppSettings,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    mode = "signup" if request.url.path == "/signup" else "login"
    presession = request.cookies.get(PRESESSION_COOKIE, "")
    if not presession or not equal(csrf, _presession_token(presession, settings)):
        expired = translator(language(request)).form_expired
        return _auth_page(request, settings, mode, status=403, error=expired, email=email)
    client = request.client.host if request.client else "unknown"
    try:
        raw = await flows.sign_in(
            request.app.state.db,
            settings,
            signup=mode == "signup",
            email=email,
            password=password,
            client=client,
        )
    except ApiError as exc:
        return _auth_page(
            request, settings, mode, status=exc.status, error=_sentence(exc), email=email
        )
    response = RedirectResponse("/dashboard", status_code=303)
    set_session_cookie(response, raw, settings)
    return response


def _presession_page(
    request: Request, settings: Settings, name: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """A page with a form posted before signing in (login, sign-up, forgot, reset): its CSRF
    field tied to a pre-session cookie (kept if the browser has one)."""
    presession = request.cookies.get(PRESESSION_COOKIE) or secrets.token_urlsafe(24)
    words = translator(language(request))
    response = _page(
        request,
        name,
        None,
        status=status,
        # the window's title, in the reader's language: log in, sign up, or the password's
        title=words[context.get("mode") or "password"],
        form_csrf=_presession_token(presession, settings),
        mail=bool(settings.smtp_url),
        **context,
    )
    response.set_cookie(
        PRESESSION_COOKIE,
        presession,
        max_age=2 * 3600,
        httponly=True,
        samesite="strict",
        secure=bool(settings.cookie_secure),
        path="/",
    )
    return response


def _presession_ok(request: Request, settings: Settings, csrf: str) -> bool:
    presession = request.cookies.get(PRESESSION_COOKIE, "")
    return bool(presession) and equal(csrf, _presession_token(presession, settings))


@router.get("/forgot")
async def forgot_page(request: Request, settings: AppSettings) -> HTMLResponse:
    """Ask for a reset link by email (or, without SMTP, who can reset it); `asked`: after the
    request, that a link is on its way if the email has an account."""
    asked = request.query_params.get("asked") == "1"
    return _presession_page(request, settings, "forgot.html", asked=asked)


@router.post("/forgot")
async def forgot_form(
    request: Request,
    settings: AppSettings,
    email: Annotated[str, Form(max_length=320)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    words = translator(language(request))
    if not _presession_ok(request, settings, csrf):
        return _presession_page(request, settings, "forgot.html", 403, error=words.form_expired)
    if not settings.smtp_url:
        return _presession_page(request, settings, "forgot.html", 400)
    client = request.client.host if request.client else "unknown"
    try:
        await reset.request_link(request.app.state.db, settings, email, client, language(request))
    except ApiError as exc:
        return _presession_page(request, settings, "forgot.html", exc.status, error=_sentence(exc))
    # a page of its own (a reload asks for nothing again), the same whether the email has an
    # account or not
    lang = request.query_params.get("lang")
    return RedirectResponse("/forgot?asked=1" + (f"&lang={lang}" if lang in LANGUAGES else ""), 303)


@router.get("/reset")
async def reset_page(
    request: Request, session: ReadSession, settings: AppSettings, token: str = ""
) -> HTMLResponse:
    """The new-password form of a reset link (told at once if the link is no good)."""
    try:
        await reset.account_of(session, settings, token)
    except ApiError as exc:
        return _presession_page(request, settings, "reset.html", exc.status, error=_sentence(exc))
    return _presession_page(request, settings, "reset.html", token=token)


@router.post("/reset")
async def reset_form(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    token: Annotated[str, Form(max_length=400)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """A new password: every session and token of the account is signed out, this browser is
    signed in."""
    words = translator(language(request))
    if not _presession_ok(request, settings, csrf):
        return _presession_page(request, settings, "reset.html", 403, error=words.form_expired)
    try:
        account = await reset.account_of(session, settings, token)
        await accounts.set_password(session, account, password)
    except ApiError as exc:
        return _presession_page(
            request,
            settings,
            "reset.html",
            exc.status,
            error=_sentence(exc),
            token=token,
        )
    raw, _ = await accounts.start_session(session, account, settings)
    response = RedirectResponse("/dashboard", status_code=303)
    set_session_cookie(response, raw, settings)
    return response


@router.post("/dashboard/logout")
async def logout(
    request: Request, session: DbSession, csrf: Annotated[str, Form()] = ""
) -> Response:
    principal = await _principal(request, session)
    if principal is not None:
        _check_csrf(principal, csrf)
        await accounts.end_session(session, principal.account_id, principal.credential_id)
    response = _login_redirect()
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
