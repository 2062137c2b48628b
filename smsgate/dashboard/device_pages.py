"""Phones and WhatsApp lines: the list, adding one, pairing, settings, deleting."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from smsgate.accounts.auth import AppSettings
from smsgate.accounts.service import Principal
from smsgate.config import Settings
from smsgate.dashboard.frame import (
    Poster,
)
from smsgate.dashboard.frame import (
    fragment as _fragment,
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
from smsgate.devices import pairing as pairings
from smsgate.devices import removal
from smsgate.devices import service as devices
from smsgate.devices import settings as device_settings
from smsgate.errors import ApiError
from smsgate.kit.i18n import Text, t
from smsgate.kit.responses import api_router
from smsgate.notify.hub import AppHub
from smsgate.storage.db import DbSession, ReadSession
from smsgate.whatsapp import service as whatsapp

router = api_router(include_in_schema=False)


async def _devices_page(
    request: Request,
    session: ReadSession | DbSession,
    principal: Principal,
    status: int = 200,
    **shown: Any,
) -> HTMLResponse:
    """The devices list; `shown`: a refused form's error and input."""
    found = await devices.list_devices(session, principal.account_id)
    return _page(
        request,
        "devices.html",
        principal,
        status=status,
        page="devices",
        title="Devices",
        devices=[devices.device_out(d) for d in found],
        **shown,
    )


@router.get("/dashboard/devices")
async def devices_page(request: Request, session: ReadSession) -> Response:
    return await _devices_page(request, session, await _viewer(request, session))


@router.get("/dashboard/devices/rows", include_in_schema=False)
async def device_rows(request: Request, session: ReadSession) -> Response:
    """The devices table's rows, refreshed by the page every few seconds (live status)."""
    principal = await _viewer(request, session)
    found = await devices.list_devices(session, principal.account_id)
    return _fragment(
        request, principal, "_device_rows.html", devices=[devices.device_out(d) for d in found]
    )


@router.post("/dashboard/devices")
async def add_device(
    principal: Poster,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    name: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    try:
        _, issued = await pairings.create_android(
            session, principal.account_id, name.strip() or "Android", settings
        )
    except ApiError as exc:
        return await _devices_page(
            request, session, principal, exc.status, created_name=name, error=_sentence(exc)
        )
    pairing = pairings.pairing_out(issued)
    return _reveal_once(
        request, principal, "/dashboard/devices", pairing=pairing, created_name=name
    )


CHOICES = [
    ("simSelectionMode", ("OSDefault", "RoundRobin", "Random")),
    ("limitPeriod", ("Disabled", "PerMinute", "Per30Minutes", "PerHour", "PerDay")),
    ("processingOrder", ("LIFO", "FIFO")),
]
NUMBERS = ("limitValue", "sendIntervalMin", "sendIntervalMax", "pingIntervalSeconds")


async def _device_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    device_id: str,
    notice: str | None = None,
    error: str | Text | None = None,
    pairing: dict[str, Any] | None = None,
) -> HTMLResponse:
    device = await devices.get_device(session, principal.account_id, device_id)
    level = request.query_params.get("level") or None
    if level not in devices.LOG_LEVELS:
        level = None
    logs, _ = await devices.list_logs(session, principal.account_id, device_id, level, 50, None)
    settings: Settings = request.app.state.settings
    waiting_for_scan = device.provider == "web" and (device.link or {}).get("state") == "pairing"
    code = devices.link_qr(device)
    return _page(
        request,
        "device.html",
        principal,
        page="devices",
        title=device.name,
        device=devices.device_out(device, settings.public_url),
        settings=device_settings.effective(device.settings or {}),
        qr_svg=devices.qr_svg(code) if code else None,
        refresh=5 if waiting_for_scan else None,  # the QR code changes every ~20 s
        pairing=pairing,
        public_url=settings.public_url,
        choices=CHOICES,
        numbers=NUMBERS,
        logs=[devices.log_out(e) for e in logs],
        level=level,
        notice=notice,
        error=error,
        at_stake=await removal.at_stake(session, principal.account_id, device_id),
    )


@router.get("/dashboard/devices/{device_id}")
async def device_page(device_id: str, request: Request, session: ReadSession) -> Response:
    principal = await _viewer(request, session)
    return await _device_page(request, session, principal, device_id)


@router.post("/dashboard/devices/{device_id}/settings")
async def device_settings_form(
    principal: Poster, device_id: str, request: Request, session: DbSession, hub: AppHub
) -> Response:
    form = await request.form()
    device = await devices.get_device(session, principal.account_id, device_id)
    values: dict[str, Any] = {name: form.get(name) for name, _ in CHOICES if form.get(name)}
    for name in NUMBERS:
        raw = str(form.get(name) or "").strip()
        if raw:
            values[name] = int(raw) if raw.isdigit() else raw
    try:
        patch = device_settings.SettingsPatch.model_validate(values)
        devices.update_settings(session, hub, device, patch)
    except (ValidationError, ApiError) as exc:
        return await _device_page(request, session, principal, device_id, error=_sentence(exc))
    return RedirectResponse(f"/dashboard/devices/{device_id}?done=saved", status_code=303)


WHATSAPP_KEYS = ("phoneNumberId", "accessToken", "appSecret", "verifyToken")


def _given(form: Any, names: tuple[str, ...]) -> dict[str, str]:
    return {
        name: str(form.get(name)).strip() for name in names if str(form.get(name) or "").strip()
    }


@router.post("/dashboard/devices/whatsapp")
async def add_whatsapp_line(
    principal: Poster, request: Request, session: DbSession, settings: AppSettings
) -> Response:
    form = await request.form()
    values: dict[str, Any] = _given(form, ("name", "provider", *WHATSAPP_KEYS))
    try:
        body = whatsapp.WhatsAppIn.model_validate(values)
        device, issued = await whatsapp.create_line(session, principal.account_id, body, settings)
    except (ValidationError, ApiError) as exc:
        return await _devices_page(request, session, principal, 400, whatsapp_error=_sentence(exc))
    url = f"/dashboard/devices/{device.id}"
    if issued is None:  # a cloud line: nothing to pair
        return RedirectResponse(url, status_code=303)
    return _reveal_once(request, principal, url, pairing=pairings.pairing_out(issued))


@router.post("/dashboard/devices/{device_id}/whatsapp")
async def whatsapp_keys_form(
    principal: Poster, device_id: str, request: Request, session: DbSession, settings: AppSettings
) -> Response:
    form = await request.form()
    device = await devices.get_device(session, principal.account_id, device_id)
    try:
        patch = whatsapp.CloudCredentials.model_validate(_given(form, WHATSAPP_KEYS))
        whatsapp.set_credentials(device, patch, settings)
    except (ValidationError, ApiError) as exc:
        return await _device_page(request, session, principal, device_id, error=_sentence(exc))
    return RedirectResponse(f"/dashboard/devices/{device_id}?done=saved", status_code=303)


@router.post("/dashboard/devices/{device_id}/pairing")
async def new_pairing_form(
    principal: Poster,
    device_id: str,
    request: Request,
    session: DbSession,
    settings: AppSettings,
) -> Response:
    device = await devices.get_device(session, principal.account_id, device_id)
    pairings.require_pairable(device)
    pairing = pairings.pairing_out(pairings.issue_pairing(device, settings))
    return _reveal_once(request, principal, f"/dashboard/devices/{device_id}", pairing=pairing)


@router.post("/dashboard/devices/{device_id}/name")
async def rename_form(
    principal: Poster,
    device_id: str,
    request: Request,
    session: DbSession,
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    device = await devices.get_device(session, principal.account_id, device_id)
    try:
        devices.rename(device, name)
    except ApiError as exc:
        return await _device_page(request, session, principal, device_id, error=_sentence(exc))
    return RedirectResponse(f"/dashboard/devices/{device_id}?done=renamed", status_code=303)


@router.post("/dashboard/devices/{device_id}/delete")
async def delete_device_form(
    principal: Poster,
    device_id: str,
    request: Request,
    session: DbSession,
    hub: AppHub,
    confirm: Annotated[str, Form()] = "",
) -> Response:
    if confirm != "yes":
        return await _device_page(
            request, session, principal, device_id, error=t("tick the box to confirm")
        )
    await removal.delete_device(session, hub, principal.account_id, device_id)
    return RedirectResponse("/dashboard/devices?done=device_deleted", status_code=303)
