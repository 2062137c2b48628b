"""Webhooks: the list, creating, editing, testing, deliveries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from smsgate.accounts.auth import AppSettings
from smsgate.accounts.service import Principal
from smsgate.dashboard.frame import (
    Poster,
)
from smsgate.dashboard.frame import (
    page as _page,
)
from smsgate.dashboard.frame import reveal_once as _reveal_once
from smsgate.dashboard.frame import (
    sentence as _sentence,
)
from smsgate.dashboard.frame import (
    viewer as _viewer,
)
from smsgate.dashboard.i18n import language, translator
from smsgate.errors import ApiError
from smsgate.kit.i18n import Text, t
from smsgate.kit.responses import api_router
from smsgate.storage.db import DbSession, ReadSession
from smsgate.webhooks import service as webhooks
from smsgate.webhooks.events import CATALOG

router = api_router(include_in_schema=False)


async def _webhooks_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    secret: str | None = None,
    error: str | Text | None = None,
    given: dict[str, Any] | None = None,
    warning: str | None = None,
) -> HTMLResponse:
    """The webhooks page; `given`: the new-webhook form's input, shown again with its error."""
    hooks = await webhooks.list_all(session, principal.account_id)
    recent = {}
    for hook in hooks:
        rows, _ = await webhooks.deliveries(session, hook, None, 10, None)
        recent[hook.id] = [webhooks.delivery_out(d, e, a) for d, e, a in rows]
    return _page(
        request,
        "webhooks.html",
        principal,
        page="webhooks",
        title="Webhooks",
        hooks=[webhooks.webhook_out(h) for h in hooks],
        disabled_webhooks=sum(1 for h in hooks if not h.enabled),
        deliveries=recent,
        catalog=list(CATALOG),
        secret=secret,
        error=error,
        given=given or {},
        warning=warning,
    )


@router.get("/dashboard/webhooks")
async def webhooks_page(request: Request, session: ReadSession) -> Response:
    principal = await _viewer(request, session)
    return await _webhooks_page(request, session, principal)


@router.post("/dashboard/webhooks")
async def create_webhook(
    principal: Poster,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    url: Annotated[str, Form(max_length=2048)] = "",
    events: Annotated[list[str] | None, Form()] = None,  # none ticked: said on the page
    format: Annotated[str, Form()] = "native",
) -> Response:
    events = events or []
    try:
        _, secret = await webhooks.create(
            session,
            principal.account_id,
            settings,
            url=url,
            events=events,
            device_id=None,
            fmt=format,
        )
    except ApiError as exc:
        given = {"url": url, "events": events}
        return await _webhooks_page(request, session, principal, error=_sentence(exc), given=given)
    # accepted (a receiver on the local network may be plain HTTP), but never silently
    plain = url.strip().lower().startswith("http://")
    warning = translator(language(request)).webhook_plain_http if plain else None
    return _reveal_once(request, principal, "/dashboard/webhooks", secret=secret, warning=warning)


@router.post("/dashboard/webhooks/{webhook_id}/edit")
async def edit_webhook(
    principal: Poster, webhook_id: str, request: Request, session: DbSession, settings: AppSettings
) -> Response:
    """Change a webhook's URL, events and whether it is enabled (as PATCH /api/webhooks/{id})."""
    form = await request.form()
    hook = await webhooks.get(session, principal.account_id, webhook_id)
    given = {
        "url": str(form.get("url") or "").strip(),
        "events": [str(e) for e in form.getlist("events")],
        "enabled": form.get("enabled") == "yes",
    }
    try:
        await webhooks.change(session, hook, settings, given)
    except ApiError as exc:
        await session.rollback()
        return await _webhooks_page(request, session, principal, error=_sentence(exc))
    return RedirectResponse("/dashboard/webhooks?done=saved", status_code=303)


@router.post("/dashboard/webhooks/{webhook_id}/deliveries/{delivery_id}/retry")
async def retry_delivery(
    principal: Poster,
    webhook_id: str,
    delivery_id: str,
    request: Request,
    session: DbSession,
) -> Response:
    hook = await webhooks.get(session, principal.account_id, webhook_id)
    await webhooks.retry(session, hook, delivery_id)
    return RedirectResponse("/dashboard/webhooks?done=retrying", status_code=303)


@router.post("/dashboard/webhooks/{webhook_id}/{action}")
async def webhook_action(
    principal: Poster,
    webhook_id: str,
    action: str,
    request: Request,
    session: DbSession,
    settings: AppSettings,
) -> Response:
    hook = await webhooks.get(session, principal.account_id, webhook_id)
    if action == "test":
        await webhooks.test(session, hook)
        return RedirectResponse("/dashboard/webhooks?done=test_sent", status_code=303)
    if action == "secret":
        secret = webhooks.secrets_of(hook, settings)[0]
        return _reveal_once(request, principal, "/dashboard/webhooks", secret=secret)
    if action == "rotate":
        secret = await webhooks.rotate(session, hook, settings, webhooks.DEFAULT_OVERLAP_SECONDS)
        return _reveal_once(request, principal, "/dashboard/webhooks", secret=secret)
    if action == "delete":
        await webhooks.delete(session, hook)
        return RedirectResponse("/dashboard/webhooks?done=webhook_deleted", status_code=303)
    raise ApiError(404, t("no such action"), "not_found")
