"""The account: the overview (with its first-run checklist), API keys, billing, the account's
settings and password."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from smsgate.accounts import preferences, scopes
from smsgate.accounts import service as accounts
from smsgate.accounts.auth import AppSettings
from smsgate.accounts.preferences import AccountSettingsPatch, change_settings, settings_out
from smsgate.accounts.schemas import key_out
from smsgate.accounts.service import Principal
from smsgate.billing import service as billing
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
from smsgate.devices import service as devices
from smsgate.errors import ApiError
from smsgate.kit import clock
from smsgate.kit.i18n import Text
from smsgate.kit.responses import api_router
from smsgate.messages import attachments, queries
from smsgate.storage.db import DbSession, ReadSession
from smsgate.webhooks import service as webhooks

router = api_router(include_in_schema=False)


@router.get("/dashboard")
async def overview(request: Request, session: ReadSession, settings: AppSettings) -> Response:
    principal = await _viewer(request, session)
    account = await accounts.get_account(session, principal.account_id)
    found = await devices.list_devices(session, principal.account_id)
    counts = {
        status: sum(1 for d in found if d.status == status)
        for status in ("online", "offline", "pending")
    }
    # "today" is the account's day, from its midnight
    local = clock.now().astimezone(preferences.zone(principal.time_zone))
    start = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    today = await queries.count_by_state(session, principal.account_id, start)
    summary = await billing.summary(
        session, account, settings, await attachments.stored_bytes(session, account.id)
    )
    hooks = await webhooks.list_all(session, principal.account_id)
    sent_once = await queries.has_sent(session, principal.account_id)
    # the first run's three steps, each ticked by what the account has done; gone once all are
    steps = [
        ("first_phone", "/dashboard/devices", any(d.status != "pending" for d in found)),
        ("first_send", "/dashboard/send", sent_once),
        ("first_key", "/dashboard/keys", summary["usage"]["apiKeys"] > 0),
    ]
    return _page(
        request,
        "overview.html",
        principal,
        page="overview",
        title="Overview",
        steps=None if all(done for _, _, done in steps) else steps,
        disabled_webhooks=sum(1 for h in hooks if not h.enabled),
        devices=counts,
        today=today,
        billing=summary,
        **await _last_30_days(session, account.id, principal.time_zone),
    )


async def _last_30_days(session: DbSession, account_id: str, zone: str) -> dict[str, Any]:
    """What _chart.html draws: messages per day (the account's days), and the tallest day."""
    today = clock.now().astimezone(preferences.zone(zone)).date()
    days = await billing.daily(session, account_id, today - timedelta(days=29), today)
    return {"days": days, "peak": max([1, *(d["messages"] for d in days)])}


async def _keys_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    new_key: str | None = None,
    error: str | Text | None = None,
) -> HTMLResponse:
    found = await accounts.list_keys(session, principal.account_id)
    return _page(
        request,
        "keys.html",
        principal,
        status=400 if error else 200,
        page="keys",
        title="API keys",
        keys=[key_out(k) for k in found],
        new_key=new_key,
        scopes=list(scopes.ALL),
        server=request.app.state.settings.public_url.rstrip("/"),
        error=error,
    )


@router.get("/dashboard/keys")
async def keys_page(request: Request, session: ReadSession) -> Response:
    principal = await _viewer(request, session)
    return await _keys_page(request, session, principal)


@router.post("/dashboard/keys")
async def create_key(
    principal: Poster,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """A new key with the scopes ticked (every scope when the form sends none): shown once,
    with ready-to-copy calls that use it."""
    form = await request.form()
    ticked = [v for k, v in form.multi_items() if k == "scope" and isinstance(v, str)]
    try:
        chosen = scopes.parse(ticked or None)
    except ApiError as exc:
        return await _keys_page(request, session, principal, error=_sentence(exc))
    _, raw = await accounts.create_key(
        session, principal.account_id, name.strip() or "key", chosen, settings
    )
    return _reveal_once(request, principal, "/dashboard/keys", new_key=raw)


@router.post("/dashboard/keys/{key_id}/revoke")
async def revoke_key(
    principal: Poster, key_id: str, request: Request, session: DbSession
) -> Response:
    await accounts.revoke_key(session, principal.account_id, key_id)
    return RedirectResponse("/dashboard/keys?done=key_revoked", status_code=303)


@router.get("/dashboard/billing")
async def billing_page(request: Request, session: ReadSession, settings: AppSettings) -> Response:
    principal = await _viewer(request, session)
    account = await accounts.get_account(session, principal.account_id)
    summary = await billing.summary(
        session, account, settings, await attachments.stored_bytes(session, account.id)
    )
    limits, usage = summary["plan"]["limits"], summary["usage"]
    bars = [
        # each bar named by its word (t.messages …)
        ("messages", usage["messages"], limits["messagesPerPeriod"]),
        ("devices", usage["devices"], limits["devices"]),
        ("webhooks", usage["webhooks"], limits["webhooks"]),
        ("keys", usage["apiKeys"], limits["apiKeys"]),
    ]
    return _page(
        request,
        "billing.html",
        principal,
        page="billing",
        title="Billing",
        billing=summary,
        bars=bars,
        **await _last_30_days(session, account.id, principal.time_zone),
    )


@router.get("/dashboard/account")
async def account_page(request: Request, session: ReadSession) -> Response:
    principal = await _viewer(request, session)
    account = await accounts.get_account(session, principal.account_id)
    return _account_page(request, principal, account)


def _account_page(request: Request, principal: Principal, account: Any, **shown: Any) -> Response:
    """The account page (e-mail, password form, sending preferences) with a form's outcome."""
    return _page(
        request,
        "account.html",
        principal,
        page="account_title",
        title="Account",
        email=account.email,
        prefs=settings_out(account),
        zones=sorted({*preferences.DEFAULT_ZONES.values(), "UTC"}),
        **shown,
    )


@router.post("/dashboard/account/settings")
async def account_settings_form(
    principal: Poster,
    request: Request,
    session: DbSession,
    reroute_stalled: Annotated[str | None, Form(alias="rerouteStalled", max_length=8)] = None,
    bypass: Annotated[str | None, Form(alias="optOutBypassExpedited", max_length=8)] = None,
    time_zone: Annotated[str | None, Form(alias="timeZone", max_length=64)] = None,
    countries: Annotated[str | None, Form(alias="allowedCountries", max_length=1000)] = None,
) -> Response:
    """The account's preferences (unchecked boxes are not sent: off; the countries as codes
    separated by commas or spaces)."""
    account = await accounts.get_account(session, principal.account_id)
    codes = None
    if countries is not None:
        codes = [c for c in countries.replace(",", " ").split() if c][:250]
    chosen = AccountSettingsPatch.model_validate(
        {
            "rerouteStalled": reroute_stalled is not None,
            "optOutBypassExpedited": bypass is not None,
            "timeZone": time_zone,
            "allowedCountries": codes,
        }
    )
    try:
        await change_settings(session, account, chosen)
    except ApiError as exc:  # refused before anything changed
        return _account_page(request, principal, account, error=_sentence(exc))
    # the page it leads to shows the new zone (the credential cache forgets the old on commit)
    return RedirectResponse("/dashboard/account?done=saved", status_code=303)


@router.post("/dashboard/account/password")
async def password_form(
    principal: Poster,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    current: Annotated[str, Form(max_length=1024)] = "",
    new: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    account = await accounts.get_account(session, principal.account_id)
    try:
        await accounts.change_password(
            session, account, current, new, principal.credential_id, settings
        )
    except ApiError as exc:
        return _account_page(request, principal, account, error=_sentence(exc), status=400)
    return RedirectResponse("/dashboard/account?done=password_changed", status_code=303)
