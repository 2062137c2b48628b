"""OpenAPI descriptions of the third-party API's request bodies
(docs: ../shared/docs/sms-gateway-3rdparty-api.md).

The routes read these bodies by hand, as the reference server's clients send them (unknown
fields ignored); the schemas tell readers, the clients' authors and the API fuzzer what they may
hold. Lists that the routes own (scope names, webhook events) are passed in, so both read one
source.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from smsgate.devices import settings as device_settings
from smsgate.kit.schema import example_body

INCOMING_TYPES = ("SMS", "DATA_SMS", "MMS", "MMS_DOWNLOADED")
_TIME = {"type": "string", "format": "date-time"}

MESSAGE = example_body(
    {
        "type": "object",
        "required": ["phoneNumbers"],
        "description": "Exactly one of textMessage, dataMessage and message.",
        "properties": {
            "id": {
                "type": "string",
                "maxLength": 36,
                "description": "Your id for it: repeating a send with it is answered with the "
                "first (our externalId).",
            },
            "deviceId": {"type": "string"},
            "phoneNumbers": {
                "type": "array",
                "minItems": 1,
                "maxItems": 100,
                "items": {"type": "string", "maxLength": 128},
            },
            "textMessage": {
                "type": "object",
                "required": ["text"],
                "properties": {"text": {"type": "string", "minLength": 1}},
            },
            "dataMessage": {
                "type": "object",
                "required": ["data"],
                "properties": {
                    "data": {"type": "string", "description": "base64, 1 to 133 bytes"},
                    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                },
            },
            "message": {"type": "string", "description": "plain text (deprecated form)"},
            "simNumber": {"type": "integer", "minimum": 1, "maximum": 3},
            "priority": {"type": "integer", "minimum": -128, "maximum": 127},
            "ttl": {"type": "integer", "minimum": 1},
            "validUntil": {**_TIME, "description": "zone-less: UTC"},
            "scheduleAt": {**_TIME, "description": "zone-less: UTC; handed to no phone before"},
            "withDeliveryReport": {"type": "boolean"},
            "isEncrypted": {"type": "boolean"},
        },
    },
    {"textMessage": {"text": "Hola mundo"}, "phoneNumbers": ["+5215555555555"]},
)


def token(scope_names: Iterable[str]) -> dict[str, Any]:
    return example_body(
        {
            "type": "object",
            "required": ["scopes"],
            "properties": {
                "scopes": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "enum": sorted(scope_names)},
                },
                "ttl": {"type": "integer", "description": "seconds (60 up to the server's)"},
            },
        },
        {"scopes": ["messages:send", "messages:read"], "ttl": 3600},
    )


def webhook(events: Iterable[str]) -> dict[str, Any]:
    return example_body(
        {
            "type": "object",
            "required": ["url", "event"],
            "properties": {
                "id": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 36,
                    "description": "Your id: posting it again replaces that webhook.",
                },
                "url": {"type": "string", "pattern": "^https://"},
                "event": {"type": "string", "enum": list(events)},
                "deviceId": {"type": "string"},
            },
        },
        {"id": "received", "url": "https://example.com/sms", "event": "sms:received"},
    )


INBOX_REFRESH = example_body(
    {
        "type": "object",
        "required": ["since", "until"],
        "properties": {
            "since": {**_TIME, "description": "zone-less: UTC"},
            "until": {**_TIME, "description": "after since"},
            "deviceId": {"type": "string", "description": "one phone; all of them without"},
            "messageTypes": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "enum": list(INCOMING_TYPES)},
            },
            "triggerWebhooks": {"type": "boolean"},
            "webhookDelivery": {"type": "string", "enum": ["Disabled", "Individual", "Batch"]},
        },
    },
    {"since": "2026-11-01T00:00:00Z", "until": "2026-11-02T00:00:00Z"},
)


def _settings_document() -> dict[str, Any]:
    """The settings document's sections and keys, with the types and bounds the phones' settings
    model checks (devices/settings.py)."""
    fields = device_settings.SettingsPatch.model_json_schema(by_alias=True)["properties"]
    sections: dict[str, dict[str, Any]] = {}
    for field, (section, key) in device_settings.APP_KEYS.items():
        prop = dict(fields[field])
        prop.pop("title", None)
        prop.pop("default", None)
        described = sections.setdefault(section, {"type": "object", "properties": {}})
        described["properties"][key] = prop
    return {
        "type": "object",
        "description": "One document for every phone of the account; `gateway` and "
        "`encryption` are never taken from this API; unknown keys are ignored.",
        "properties": sections,
    }


SETTINGS = example_body(
    _settings_document(),
    {"messages": {"send_interval_min": 5, "send_interval_max": 15, "limit_period": "PerMinute"}},
)
