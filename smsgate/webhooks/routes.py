"""HTTP endpoints of webhooks (scope `webhooks`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import Response
from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from smsgate.accounts.auth import AppSettings, WebhooksScope
from smsgate.errors import bad_request
from smsgate.kit import clock
from smsgate.kit.i18n import t
from smsgate.kit.responses import JSONResponse, api_router
from smsgate.kit.schema import Input
from smsgate.storage import idempotency
from smsgate.storage.db import DbSession, ReadSession
from smsgate.webhooks import payloads, service
from smsgate.webhooks.events import CATALOG
from smsgate.webhooks.signing import FORMATS

router = api_router(tags=["webhooks"])


_EVENT_NAMES: JsonDict = {"items": {"enum": list(CATALOG)}}
_FORMAT_NAMES: JsonDict = {"enum": list(FORMATS)}


class WebhookIn(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://example.com/hooks/sms",
                    "events": ["sms:received", "sms:delivered"],
                }
            ]
        }
    )

    url: str = Field(max_length=2048)
    events: list[str] = Field(max_length=len(CATALOG), json_schema_extra=_EVENT_NAMES)
    device_id: str | None = None
    format: str = Field(default="native", json_schema_extra=_FORMAT_NAMES)


class WebhookPatch(Input):
    url: str | None = Field(default=None, max_length=2048)
    events: list[str] | None = Field(
        default=None, max_length=len(CATALOG), json_schema_extra=_EVENT_NAMES
    )
    device_id: str | None = None
    format: str | None = Field(default=None, json_schema_extra=_FORMAT_NAMES)
    enabled: bool | None = None


class RotateIn(Input):
    overlap_seconds: int = service.DEFAULT_OVERLAP_SECONDS


class ReplayIn(Input):
    since: datetime = Field(strict=False)
    until: datetime | None = Field(default=None, strict=False)


@router.get("/api/webhooks/events")
async def event_types(principal: WebhooksScope) -> dict[str, Any]:
    return {"data": payloads.catalog()}


@router.get("/api/webhooks")
async def list_webhooks(principal: WebhooksScope, session: ReadSession) -> dict[str, Any]:
    hooks = await service.list_all(session, principal.account_id)
    return {"data": [service.webhook_out(h) for h in hooks], "nextCursor": None}


@router.post(
    "/api/webhooks",
    status_code=201,
    response_model=None,
    openapi_extra={
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                "description": "Makes a retry safe: within 24 hours the same key and request "
                "get the first answer back (Idempotent-Replayed: true), a different request 409.",
            }
        ]
    },
)
async def create_webhook(
    request: Request,
    body: WebhookIn,
    principal: WebhooksScope,
    session: DbSession,
    settings: AppSettings,
) -> Response:
    """Register an endpoint. With an `Idempotency-Key` header a retry within 24 hours gets the
    first answer back instead of a second endpoint (storage/idempotency.py)."""
    key = idempotency.key_of(request)
    print_ = (
        idempotency.fingerprint("POST /api/webhooks", body.model_dump(mode="json")) if key else ""
    )
    if key is not None:
        earlier = await idempotency.replay(session, principal.account_id, key, print_, settings)
        if earlier is not None:
            return earlier
    hook, secret = await service.create(
        session,
        principal.account_id,
        settings,
        url=body.url,
        events=body.events,
        device_id=body.device_id,
        fmt=body.format,
    )
    answer = JSONResponse({**service.webhook_out(hook), "secret": secret}, status_code=201)
    if key is None:
        return answer
    return await idempotency.remember(session, principal.account_id, key, print_, answer, settings)


@router.get("/api/webhooks/{webhook_id}")
async def get_webhook(
    webhook_id: str, principal: WebhooksScope, session: ReadSession
) -> dict[str, Any]:
    return service.webhook_out(await service.get(session, principal.account_id, webhook_id))


@router.get("/api/webhooks/{webhook_id}/secret")
async def get_secret(
    webhook_id: str, principal: WebhooksScope, session: ReadSession, settings: AppSettings
) -> dict[str, Any]:
    hook = await service.get(session, principal.account_id, webhook_id)
    valid = service.secrets_of(hook, settings)
    return {"secret": valid[0], "previousSecret": valid[1] if len(valid) > 1 else None}


@router.patch("/api/webhooks/{webhook_id}")
async def patch_webhook(
    webhook_id: str,
    body: WebhookPatch,
    principal: WebhooksScope,
    session: DbSession,
    settings: AppSettings,
) -> dict[str, Any]:
    hook = await service.get(session, principal.account_id, webhook_id)
    await service.change(session, hook, settings, body.model_dump(exclude_unset=True))
    return service.webhook_out(hook)


@router.delete("/api/webhooks/{webhook_id}")
async def delete_webhook(
    webhook_id: str, principal: WebhooksScope, session: DbSession
) -> dict[str, Any]:
    await service.delete(session, await service.get(session, principal.account_id, webhook_id))
    return {"id": webhook_id, "deleted": True}


@router.post("/api/webhooks/{webhook_id}/rotate-secret")
async def rotate_secret(
    webhook_id: str,
    principal: WebhooksScope,
    session: DbSession,
    settings: AppSettings,
    body: RotateIn | None = None,
) -> dict[str, Any]:
    """A new secret; the old one keeps signing for `overlapSeconds` (0: drop it now)."""
    hook = await service.get(session, principal.account_id, webhook_id)
    overlap = (body or RotateIn()).overlap_seconds
    secret = await service.rotate(session, hook, settings, overlap)
    return {**service.webhook_out(hook), "secret": secret}


@router.get("/api/webhooks/{webhook_id}/deliveries")
async def list_deliveries(
    webhook_id: str,
    principal: WebhooksScope,
    session: ReadSession,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    hook = await service.get(session, principal.account_id, webhook_id)
    rows, next_cursor = await service.deliveries(session, hook, status, limit, cursor)
    return {"data": [service.delivery_out(d, e, a) for d, e, a in rows], "nextCursor": next_cursor}


@router.post("/api/webhooks/{webhook_id}/deliveries/{delivery_id}/retry")
async def retry_delivery(
    webhook_id: str, delivery_id: str, principal: WebhooksScope, session: DbSession
) -> dict[str, Any]:
    hook = await service.get(session, principal.account_id, webhook_id)
    delivery = await service.retry(session, hook, delivery_id)
    return {"id": delivery.id, "status": delivery.status}


@router.post("/api/webhooks/{webhook_id}/test", status_code=202)
async def test_webhook(
    webhook_id: str, principal: WebhooksScope, session: DbSession
) -> dict[str, Any]:
    hook = await service.get(session, principal.account_id, webhook_id)
    return {"deliveryId": await service.test(session, hook)}


@router.post("/api/webhooks/{webhook_id}/replay", status_code=202)
async def replay(
    webhook_id: str, body: ReplayIn, principal: WebhooksScope, session: DbSession
) -> dict[str, Any]:
    hook = await service.get(session, principal.account_id, webhook_id)
    since = body.since
    until = body.until or clock.now()
    for name, value in (("since", since), ("until", until)):
        if value.tzinfo is None:
            raise bad_request(
                t("{name}: needs a time zone, such as 2026-01-01T00:00:00Z", name=name), field=name
            )
    count = await service.replay(session, hook, clock.as_utc(since), clock.as_utc(until))
    return {"queued": count}
