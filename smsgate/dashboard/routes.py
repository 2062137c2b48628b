"""Dashboard pages: the same services as the API, a session cookie, a CSRF field in each form.
This module serves the script and the front door and mounts the page modules."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from smsgate.dashboard import (
    account_pages,
    campaign_pages,
    conversation_pages,
    device_pages,
    message_pages,
    sign_in,
    webhook_pages,
)
from smsgate.dashboard.frame import (
    LoginRequired,
)
from smsgate.dashboard.frame import (
    login_redirect as _login_redirect,
)
from smsgate.dashboard.frame import (
    principal_of as _principal,
)
from smsgate.kit.responses import api_router
from smsgate.storage.db import ReadSession

router = api_router(include_in_schema=False)
APP_JS = (Path(__file__).parent / "static" / "app.js").read_bytes()


@router.get("/dashboard/static/app.js", include_in_schema=False)
async def app_js() -> Response:
    return Response(
        APP_JS,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _to_login(_: Request, __: LoginRequired) -> Response:
        return _login_redirect()


@router.get("/")
async def home(request: Request, session: ReadSession) -> Response:
    if await _principal(request, session):
        return RedirectResponse("/dashboard", status_code=303)
    return _login_redirect()


# the pages, one module per part of the day's work
for _pages in (
    sign_in,
    account_pages,
    device_pages,
    message_pages,
    conversation_pages,
    webhook_pages,
    campaign_pages,
):
    router.routes.extend(_pages.router.routes)
