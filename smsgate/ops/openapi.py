"""The OpenAPI document at /openapi.json, completed where FastAPI cannot know the API.

Most routes read their credential by hand (the busiest for speed, the rest through one
dependency that takes a Bearer header or the session cookie), so FastAPI sees no security on
them. This module declares the schemes and, per operation, which one it takes; adds the links
from each created resource to the operations that use its id (so generated clients and
stateful testers can follow them); describes errors as the API sends them: a 400 with
`{"error", "code", "field"}` (`{"message"}` on the third-party API), not FastAPI's default 422
validation shape, which this API never sends (422 is only the anti-abuse refusal of a send); and
gives the main answers their exact shapes (smsgate/ops/answers.py).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute

from smsgate.accounts.auth import SESSION_COOKIE, session_principal
from smsgate.config import Settings
from smsgate.errors import COMPAT_PREFIX
from smsgate.ops.answers import RESPONSES

SCHEMES: dict[str, dict[str, Any]] = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`sk_…`, POST /api/keys) or an access token (`at_…`, "
        "POST /api/auth/token).",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The dashboard's session (POST /api/auth/login). Writes also need the "
        "login answer's `csrfToken` in an `X-CSRF-Token` header.",
    },
    "basic": {
        "type": "http",
        "scheme": "basic",
        "description": "The account's e-mail and password (the third-party API; a phone asking "
        "for a login code).",
    },
    "deviceToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The token a phone received when it registered "
        "(POST /api/mobile/v1/device).",
    },
    "registrationToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The pairing token of a device created in the dashboard or with POST "
        "/api/devices/android, or the server's SMSGATE_MOBILE_REGISTRATION_TOKEN. A phone may "
        "instead send the account's login (Basic) or a one-time code (`Authorization: Code "
        "…`, GET /api/mobile/v1/user/code).",
    },
    "refreshToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "A refresh token from POST /api/3rdparty/v1/auth/token.",
    },
}

ACCOUNT: list[dict[str, list[str]]] = [{"apiKey": []}, {"session": []}]
SESSION_ONLY: list[dict[str, list[str]]] = [{"session": []}]
THIRD_PARTY: list[dict[str, list[str]]] = [{"basic": []}, {"apiKey": []}]
DEVICE: list[dict[str, list[str]]] = [{"deviceToken": []}]

# (method, path) answered without any credential
PUBLIC = {
    ("get", "/health"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("post", "/api/auth/signup"),
    ("post", "/api/auth/login"),
    ("get", "/api/auth/scopes"),
    ("post", "/api/auth/token/refresh"),  # the refresh token is in the body
    ("get", "/api/3rdparty/v1/health"),
    # Meta's calls: a verify token in the query, a signature header on events
    ("get", "/api/whatsapp/webhook/{device_id}"),
    ("post", "/api/whatsapp/webhook/{device_id}"),
}

# operations that send, and so may meet the anti-abuse rules' and the channels' 422
SENDS = {
    ("post", "/api/v1/send"),
    ("post", "/api/conversations/{conversation_id}/send"),
    ("post", "/api/3rdparty/v1/messages"),
}

_PLAN_LIMIT = "The plan allows no more of these (`plan_limit`): delete one or change plan."
_SEND_REFUSED = {
    "402": "The plan does not include the channel (`channel_not_in_plan`), the send would "
    "pass the period's message quota (`quota_exceeded`, with `used`, `limit`, `resetsAt`), or "
    "an MMS's media would pass the plan's storage (`storage_quota`).",
    "409": "The `externalId` was used for a different message (`idempotency_conflict`, with "
    "`messageId`).",
}
# statuses particular to some operations, beside those every operation of a kind may answer
EXTRA_STATUSES: dict[tuple[str, str], dict[str, str]] = {
    ("post", "/api/v1/send"): _SEND_REFUSED,
    ("post", "/api/conversations/{conversation_id}/send"): _SEND_REFUSED,
    ("post", "/api/devices/android"): {"402": _PLAN_LIMIT},
    ("post", "/api/devices/whatsapp"): {"402": _PLAN_LIMIT},
    ("post", "/api/keys"): {"402": _PLAN_LIMIT},
    ("post", "/api/webhooks"): {
        "402": _PLAN_LIMIT,
        "409": "The `Idempotency-Key` was used for a different request, or is in use by a "
        "concurrent one.",
    },
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {
        "error": {"type": "string", "description": "What is wrong and how to fix it."},
        "code": {"type": "string", "description": "A stable code to branch on."},
        "field": {"type": "string", "description": "The field at fault, when there is one."},
    },
}

# the third-party API's errors, as the reference server and its SDKs have them (errors.py)
COMPAT_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["message"],
    "properties": {"message": {"type": "string", "description": "What is wrong."}},
}

# created resource -> the operations that take its id: (operation path, its parameter, where
# the creating answer holds the id)
_LINKS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("post", "/api/webhooks"): ("/api/webhooks/{webhook_id}", "webhook_id", "id"),
    ("post", "/api/keys"): ("/api/keys/{key_id}", "key_id", "id"),
    ("post", "/api/devices/android"): ("/api/devices/{device_id}", "device_id", "id"),
    ("post", "/api/devices/whatsapp"): ("/api/devices/{device_id}", "device_id", "id"),
    ("post", "/api/v1/send"): ("/api/v1/messages/{message_id}", "message_id", "id"),
    ("post", "/api/opt-outs"): ("/api/opt-outs/{phone_number}", "phone_number", "phoneNumber"),
    ("post", "/api/3rdparty/v1/messages"): (
        "/api/3rdparty/v1/messages/{message_id}",
        "message_id",
        "id",
    ),
    ("post", "/api/3rdparty/v1/webhooks"): (
        "/api/3rdparty/v1/webhooks/{hook_id}",
        "hook_id",
        "id",
    ),
}


def security_for(method: str, path: str, settings: Settings) -> list[dict[str, list[str]]]:
    """The credentials an operation takes; [] for none."""
    if (method, path) in PUBLIC:
        return []
    if path == "/api/mobile/v1/device":
        if method == "post":  # registering a phone
            if settings.mobile_open_registration:
                return [{}]
            return [{"registrationToken": []}, {"basic": []}]
        if method == "get":  # without a token: only the caller's address
            return [*DEVICE, {}]
    if path == "/api/mobile/v1/user/code":  # a phone asks for a login code for a new phone
        return [{"basic": []}]
    if path.startswith("/api/mobile/"):
        return DEVICE
    if path == "/api/3rdparty/v1/auth/token/refresh":
        return [{"refreshToken": []}]
    if path.startswith("/api/3rdparty/"):
        return THIRD_PARTY
    return ACCOUNT


def _session_only(routes: list[BaseRoute]) -> set[tuple[str, str]]:
    """(method, path) of the routes that depend on a logged-in session (SessionPrincipal)."""

    def needs(dependant: Dependant) -> bool:
        return any(d.call is session_principal or needs(d) for d in dependant.dependencies)

    return {
        (method.lower(), route.path)
        for route in routes
        if isinstance(route, APIRoute) and needs(route.dependant)
        for method in route.methods or ()
    }


def install_openapi(app: FastAPI, settings: Settings) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            complete(document, settings, _session_only(app.routes))
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def complete(
    document: dict[str, Any], settings: Settings, session_only: set[tuple[str, str]]
) -> None:
    components = document.setdefault("components", {})
    components["securitySchemes"] = SCHEMES
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas["CompatError"] = COMPAT_ERROR_SCHEMA
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    paths: dict[str, dict[str, Any]] = document.get("paths", {})
    for path, operations in paths.items():
        name = "CompatError" if path.startswith(COMPAT_PREFIX) else "Error"
        error = {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}
        for method, operation in operations.items():
            security = security_for(method, path, settings)
            if (method, path) in session_only:
                security = SESSION_ONLY
            responses = operation["responses"]
            if security:
                operation["security"] = security
                responses.setdefault(
                    "401", {"description": "No valid credential.", "content": error}
                )
            for status, description in _statuses(path, security).items():
                responses.setdefault(status, {"description": description, "content": error})
            if "422" in responses or operation.get("parameters") or "requestBody" in operation:
                responses.pop("422", None)
                responses.setdefault(
                    "400", {"description": "Bad input; `field` names it.", "content": error}
                )
            if (method, path) in SENDS:
                responses["422"] = {
                    "description": "Refused by an anti-abuse rule (a country the account does "
                    "not send to, a premium-rate number, a run of sequential numbers); or "
                    "`channel_unavailable`: no device of the account (or the pinned one) can "
                    "ever carry the channel (MMS on the stock app, WhatsApp with no line); or "
                    "`media_unavailable`: an MMS's `mediaUrls[i]` could not be fetched.",
                    "content": error,
                }
            for status, description in EXTRA_STATUSES.get((method, path), {}).items():
                responses.setdefault(status, {"description": description, "content": error})
            answer = RESPONSES.get((method, path))
            if answer is not None:
                _describe_answer(operation, *answer, schemas)
            link = _LINKS.get((method, path))
            if link is not None:
                _add_links(paths, operation, *link)


def _statuses(path: str, security: list[dict[str, list[str]]]) -> dict[str, str]:
    """The error statuses every operation of a kind may answer, whatever its own rules."""
    found = {
        "503": "The database is unavailable, or its storage is full (`storage_full`); retry "
        "after `Retry-After`."
    }
    if "{" in path:
        found["404"] = "No such resource in this account (or in any)."
    if any(security) and not path.startswith("/api/mobile/"):
        found["403"] = (
            "The credential lacks the scope this operation needs (`insufficient_scope`), a "
            "session's write lacks its `X-CSRF-Token` (`csrf_failed`), or the operation needs "
            "a logged-in session (`session_required`)."
        )
        found["429"] = "Too many requests for the plan's rate limit; retry after `Retry-After`."
    return found


def _describe_answer(
    operation: dict[str, Any],
    statuses: tuple[str, ...],
    model: type[BaseModel],
    schemas: dict[str, Any],
) -> None:
    """The operation's success answers take the model's shape (smsgate/ops/answers.py), which joins
    the document's schemas with the models it uses."""
    refs, defs = models_json_schema(
        [(model, "serialization")], ref_template="#/components/schemas/{model}"
    )
    for name, schema in defs.get("$defs", {}).items():
        if schemas.setdefault(name, schema) != schema:
            raise RuntimeError(f"two different schemas are named {name} in the OpenAPI document")
    reference = refs[(model, "serialization")]
    for status in statuses:
        response = operation["responses"].setdefault(status, {"description": "Done."})
        response["content"] = {"application/json": {"schema": reference}}
    for status in list(operation["responses"]):
        # FastAPI's default answer, when it is not one of the operation's real ones
        if status.startswith("2") and status not in statuses:
            operation["responses"].pop(status)


def _add_links(
    paths: dict[str, dict[str, Any]], operation: dict[str, Any], target: str, name: str, key: str
) -> None:
    links = {}
    for path, operations in paths.items():
        if not (path == target or path.startswith(target + "/")):
            continue
        for method, used in operations.items():
            # the operation must take the id in that parameter and no other path parameter
            if set(re.findall(r"{([^}]+)}", path)) != {name}:
                continue
            links[used["operationId"]] = {
                "operationId": used["operationId"],
                "parameters": {name: f"$response.body#/{key}"},
                "description": f"{method.upper()} {path} for the resource just created",
            }
    for code, response in operation["responses"].items():
        if code.startswith("2") and links:
            response["links"] = links
