"""The third-party API's webhooks: one event each, created or replaced by the client's id;
their deliveries use the Android app's envelope and X-Signature scheme (format `android`),
which their receivers know."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from smsgate.accounts.auth import AppSettings
from smsgate.compat import bodies
from smsgate.compat.caller import PREFIX, Caller, device_id_of, json_object, need
from smsgate.errors import bad_request
from smsgate.kit.i18n import t
from smsgate.kit.responses import api_router
from smsgate.storage.db import DbSession, ReadSession
from smsgate.webhooks import service as webhooks
from smsgate.webhooks.models import Webhook

router = api_router(prefix=PREFIX, tags=["compat"])

# Their events that SMSGate emits under the same name; the others are refused with a reason.
WEBHOOK_EVENTS = (
    "sms:received",
    "sms:sent",
    "sms:delivered",
    "sms:failed",
    "system:ping",
    "mms:received",
    "mms:downloaded",
)


def _webhook_rows(hook: Webhook) -> list[dict[str, Any]]:
    return [
        {
            "id": hook.client_id or hook.id,
            "url": hook.url,
            "event": event,
            "deviceId": hook.device_id,  # null when it serves every device, as the reference
        }
        for event in hook.events
        if event in WEBHOOK_EVENTS
    ]


@router.get("/webhooks")
async def list_webhooks(principal: Caller, session: ReadSession) -> list[dict[str, Any]]:
    need(principal, "webhooks:list")
    hooks = await webhooks.list_all(session, principal.account_id)
    return [row for hook in hooks for row in _webhook_rows(hook)]


@router.post("/webhooks", status_code=201, openapi_extra=bodies.webhook(WEBHOOK_EVENTS))
async def upsert_webhook(
    request: Request, principal: Caller, session: DbSession, settings: AppSettings
) -> dict[str, Any]:
    """Created, or replaced when the client's id already exists."""
    need(principal, "webhooks:write")
    body = await json_object(request)
    url, event = body.get("url"), body.get("event")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise bad_request(t("url: must start with https://"), field="url")
    if event not in WEBHOOK_EVENTS:
        raise bad_request(
            t(
                'event: "{event}" is not one SMSGate sends; use one of {value}',
                event=event,
                value=", ".join(WEBHOOK_EVENTS),
            ),
            field="event",
        )
    client_id = body.get("id")
    if client_id is not None and (not isinstance(client_id, str) or not 0 < len(client_id) <= 36):
        raise bad_request(t("id: must be a string of 1 to 36 characters"), field="id")
    hook = await webhooks.upsert_by_client_id(
        session,
        principal.account_id,
        settings,
        client_id,
        url=url,
        events=[event],
        device_id=device_id_of(body),
        fmt="android",
    )
    return _webhook_rows(hook)[0]


@router.delete("/webhooks/{hook_id}", status_code=204)
async def delete_webhook(hook_id: str, principal: Caller, session: DbSession) -> Response:
    need(principal, "webhooks:delete")
    await webhooks.delete_by_client_id(session, principal.account_id, hook_id)
    return Response(status_code=204)
