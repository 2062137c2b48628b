"""WhatsApp endpoints: creating lines, a web line's QR, Meta's webhooks, the bridge's reports."""

from __future__ import annotations

import json
from typing import Any

from fastapi import BackgroundTasks, Query, Request, Response
from fastapi.responses import PlainTextResponse

from smsgate.accounts.auth import AppSettings, DevicesScope
from smsgate.devices import pairing as pairings
from smsgate.devices import service as devices
from smsgate.devices.auth import DeviceAuth
from smsgate.devices.models import Device
from smsgate.errors import ApiError
from smsgate.kit.crypto import equal
from smsgate.kit.i18n import t
from smsgate.kit.responses import JSONResponse, api_router
from smsgate.kit.schema import json_body, parse_json, storable
from smsgate.messages import reports
from smsgate.notify.hub import AppHub
from smsgate.storage.db import DbSession, ReadSession
from smsgate.whatsapp import bodies, cloud, service

router = api_router(tags=["whatsapp"])


@router.post("/api/devices/whatsapp", status_code=201)
async def create_line(
    body: service.WhatsAppIn, principal: DevicesScope, session: DbSession, settings: AppSettings
) -> dict[str, Any]:
    """A cloud line (Cloud API credentials now or later through PATCH .../settings), or a web
    line, answered with the pairing token its `smsgate whatsapp bridge` starts with."""
    device, pairing = await service.create_line(session, principal.account_id, body, settings)
    out = devices.device_out(device, settings.public_url)
    if pairing is not None:
        out["pairing"] = pairings.pairing_out(pairing)
    return out


@router.get("/api/devices/{device_id}/qr")
async def qr(
    device_id: str,
    principal: DevicesScope,
    session: ReadSession,
    format: str = Query("json", pattern="^(json|svg)$"),
) -> Response:
    """The QR code a web line's bridge is showing, to scan from WhatsApp > Linked devices."""
    device = await devices.get_device(session, principal.account_id, device_id)
    if device.provider != "web":
        raise ApiError(409, t("only web WhatsApp lines are linked by QR code"), "wrong_device_type")
    link = device.link or {}
    code = devices.link_qr(device)
    if code is None:
        state = link.get("state", "pairing")
        hint = (
            "start `smsgate whatsapp bridge` with this line's pairing token"
            if state == "pairing"
            else f"the session is {state}; no QR code is needed"
            if state == "connected"
            else f"the session is {state}; the bridge shows a new QR code when it restarts"
        )
        raise ApiError(404, t("no QR code to show: {hint}", hint=hint), "qr_not_available")
    svg = devices.qr_svg(code)
    if format == "svg":
        return Response(svg, media_type="image/svg+xml")
    return Response(
        json.dumps({"qr": code, "qrSvg": svg, "state": "pairing", "at": link.get("at")}),
        media_type="application/json",
    )


async def _cloud_line(session: DbSession, device_id: str) -> Device:
    device = await devices.find_device(session, device_id)
    if device is None or device.provider != "cloud":
        raise ApiError(404, t("no WhatsApp cloud line has this id"), "not_found")
    return device


@router.get("/api/whatsapp/webhook/{device_id}", response_class=PlainTextResponse)
async def verify_webhook(
    device_id: str, request: Request, session: ReadSession, settings: AppSettings
) -> str:
    """Meta's subscription handshake: echo hub.challenge when hub.verify_token is the line's."""
    device = await _cloud_line(session, device_id)
    query = request.query_params
    expected = service.credentials(device, settings).verify_token
    if query.get("hub.mode") != "subscribe" or not expected:
        raise ApiError(403, t("not a subscription request for this line"), "forbidden")
    if not equal(query.get("hub.verify_token", ""), expected):
        raise ApiError(403, t("hub.verify_token is not this line's verifyToken"), "forbidden")
    return query.get("hub.challenge", "")


@router.post("/api/whatsapp/webhook/{device_id}")
async def receive_webhook(
    device_id: str, request: Request, session: DbSession, settings: AppSettings
) -> Any:
    """Messages and statuses from Meta, signed with the app secret (X-Hub-Signature-256)."""
    raw = await request.body()
    device = await _cloud_line(session, device_id)
    secret = service.credentials(device, settings).app_secret
    if not cloud.signature_ok(secret, raw, request.headers.get("x-hub-signature-256")):
        raise ApiError(
            401, t("X-Hub-Signature-256 does not match this line's appSecret"), "bad_signature"
        )
    payload = parse_json(raw)
    if not isinstance(payload, dict):
        raise ApiError(400, t("request body must be a JSON object"), "validation_error")
    files: list[service.PendingMedia] = []
    counts = await service.receive_cloud_webhook(session, device, payload, settings, files)
    if files:  # fetched after the answer (Meta wants it fast), once the messages are committed
        database, http = request.app.state.db, request.app.state.webhook_http
        tasks = BackgroundTasks()
        tasks.add_task(service.fetch_files, database, http, settings, files)
        return JSONResponse(counts, background=tasks)
    return counts


@router.post("/api/mobile/v1/whatsapp/session", openapi_extra=bodies.SESSION)
async def bridge_session(
    request: Request, device: DeviceAuth, session: DbSession, hub: AppHub
) -> Any:
    """Extension of the mobile protocol for `smsgate whatsapp bridge`: its session state
    (`pairing` with the QR text, `connected`, `disconnected`, `logged_out`)."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, t("request body must be a JSON object"), "validation_error")
    return await service.report_session(
        session, hub, device, body.get("state"), body.get("qr"), body.get("phoneNumber")
    )


@router.post("/api/mobile/v1/whatsapp/statuses", openapi_extra=bodies.STATUSES)
async def bridge_statuses(
    request: Request, device: DeviceAuth, session: DbSession
) -> dict[str, int]:
    """Extension for the bridge: receipts by the provider's message id
    (`[{"providerMessageId", "state": "Delivered" | "Failed", "error"?}]`)."""
    body = await json_body(request)
    if not isinstance(body, list):
        raise ApiError(400, t("request body must be a list of statuses"), "validation_error")
    applied = 0
    for item in body[:500]:
        provider_id = item.get("providerMessageId") if isinstance(item, dict) else None
        if not isinstance(provider_id, str) or "\x00" in provider_id:  # NUL: names nothing
            continue
        if item.get("state") not in ("Sent", "Delivered", "Failed"):
            continue
        error = item.get("error")
        changed = await reports.provider_status(
            session,
            device,
            provider_id[:128],
            item["state"],
            storable(error)[:1000] if error else None,
            None,
        )
        applied += bool(changed)
    return {"applied": applied}
