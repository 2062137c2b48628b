"""What every route of the third-party API shares: its callers (Basic or Bearer), its scopes
onto ours, and reading its bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request

from smsgate.accounts import scopes
from smsgate.accounts.auth import basic_principal, current_principal
from smsgate.accounts.service import Principal
from smsgate.errors import ApiError, bad_request
from smsgate.kit import clock, schema
from smsgate.kit.i18n import t

PREFIX = "/api/3rdparty/v1"
# bounds of numeric query parameters: past them a value means nothing (and would overflow the
# database's integers or the calendar)
MAX_OFFSET = 2**31 - 1
MAX_ACTIVE_WITHIN_HOURS = 10 * 366 * 24
# Their scopes onto ours.
SCOPES = {
    "messages:send": scopes.SEND,
    "messages:cancel": scopes.SEND,
    "messages:read": scopes.READ_MESSAGES,
    "messages:list": scopes.READ_MESSAGES,
    "messages:export": scopes.READ_MESSAGES,
    "inbox:list": scopes.READ_MESSAGES,
    "inbox:refresh": scopes.READ_MESSAGES,
    "devices:list": scopes.DEVICES,
    "devices:delete": scopes.DEVICES,
    "settings:read": scopes.DEVICES,
    "settings:write": scopes.DEVICES,
    "logs:read": scopes.DEVICES,
    "webhooks:list": scopes.WEBHOOKS,
    "webhooks:write": scopes.WEBHOOKS,
    "webhooks:delete": scopes.WEBHOOKS,
    "tokens:manage": scopes.KEYS,
}


async def compat_principal(request: Request) -> Principal:
    """Basic (email and password) or Bearer (at_ tokens and sk_ keys)."""
    scheme, _, credential = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "basic" and credential.strip():
        principal = await basic_principal(request, credential.strip())
        request.state.principal = principal
        return principal
    if scheme.lower() != "bearer":
        raise ApiError(401, t("send Basic email:password or a Bearer token"), "unauthorized")
    return await current_principal(request)


Caller = Annotated[Principal, Depends(compat_principal)]


def need(principal: Principal, their_scope: str) -> None:
    """403 unless the caller holds our scope for their `their_scope`."""
    if SCOPES[their_scope] not in principal.scopes:
        raise ApiError(
            403, t("scope required: {their_scope}", their_scope=their_scope), "insufficient_scope"
        )


async def json_object(request: Request) -> dict[str, Any]:
    body = schema.parse_json(await request.body())
    if not isinstance(body, dict):
        raise bad_request(t("request body must be a JSON object"))
    return body


def device_id_of(body: dict[str, Any]) -> str | None:
    """A body's optional deviceId; a 400 when it is not a string."""
    device_id = body.get("deviceId")
    if device_id is not None and not isinstance(device_id, str):
        raise bad_request(t("deviceId: must be a device id (a string)"), field="deviceId")
    return device_id


def time_of(body: dict[str, Any], name: str) -> datetime:
    """A time of a body, in UTC (a zone-less one is UTC: the Python client writes those); a 400
    naming the field when it is missing or not a time."""
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise bad_request(t("{name}: give an RFC 3339 time", name=name), field=name)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad_request(
            t('{name}: "{value}" is not an RFC 3339 time', name=name, value=value[:40]), field=name
        ) from exc
    return clock.as_utc(parsed)


def utc(value: datetime | None) -> datetime | None:
    """A query's time in UTC (a zone-less one is UTC)."""
    return None if value is None else clock.as_utc(value)
