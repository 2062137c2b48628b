"""OpenAPI descriptions of the phones' request bodies (docs/android-app-protocol.md).

The mobile routes read their bodies by hand and leniently, as the stock app expects (unknown
fields ignored, a report's bad item skipped); these schemas only tell readers, client authors
and the API fuzzer what the app sends.
"""

from __future__ import annotations

from typing import Any

from smsgate.devices.service import LOG_LEVELS
from smsgate.kit.schema import example_body

STATES = ["Pending", "Cancelling", "Cancelled", "Processed", "Sent", "Delivered", "Failed"]

_SIM_CARDS: dict[str, Any] = {
    "type": "array",
    "description": "The phone's SIM cards; the app masks all but the last four characters.",
    "items": {
        "type": "object",
        "properties": {
            "slotIndex": {"type": "integer", "description": "0-based physical slot"},
            "simNumber": {"type": "integer", "description": "1-based"},
            "phoneNumber": {"type": "string"},
            "carrierName": {"type": "string"},
            "iccid": {"type": "string"},
        },
    },
}


_CHANNELS = {
    "type": "array",
    "items": {"type": "string", "enum": ["sms", "data", "mms"]},
    "minItems": 1,
    "description": "Our extension: the channels this phone carries (the stock app sends none: "
    "sms and data). Only a phone that declares mms is handed MMS, as `mmsMessage`.",
}

REGISTER = example_body(
    {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "maxLength": 128, "description": "maker/product"},
            "pushToken": {"type": "string", "maxLength": 256},
            "simCards": _SIM_CARDS,
            "channels": _CHANNELS,
        },
    },
    {"name": "samsung/beyond0lte", "simCards": [{"slotIndex": 0, "simNumber": 1}]},
)

UPDATE = example_body(
    {
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": "this device's id"},
            "pushToken": {"type": "string", "maxLength": 256},
            "simCards": _SIM_CARDS,
            "channels": _CHANNELS,
        },
    },
    {"pushToken": "fcm-token"},
)

_STATE = {"type": "string", "enum": STATES}
REPORTS = example_body(
    {
        "type": "array",
        "description": "State reports; the app sends one at a time. Unknown ids are skipped.",
        "items": {
            "type": "object",
            "required": ["id", "state"],
            "properties": {
                "id": {"type": "string"},
                "state": _STATE,
                "recipients": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["phoneNumber", "state"],
                        "properties": {
                            "phoneNumber": {"type": "string"},
                            "state": _STATE,
                            "error": {"type": "string"},
                        },
                    },
                },
                "states": {
                    "type": "object",
                    "description": "when each state was entered, with the phone's time zone",
                    "additionalProperties": {"type": "string", "format": "date-time"},
                },
            },
        },
    },
    [
        {
            "id": "cm0000000000000000000000a",
            "state": "Sent",
            "recipients": [{"phoneNumber": "+5215555555555", "state": "Sent"}],
            "states": {"Processed": "2026-03-13T10:00:01.120+01:00"},
        }
    ],
)

INBOX = example_body(
    {
        "type": "object",
        "required": ["messages"],
        "properties": {
            "messages": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["phoneNumber"],
                    "properties": {
                        "id": {"type": "string", "description": "the phone's own id (dedup)"},
                        "type": {"type": "string", "enum": ["sms", "data", "mms", "whatsapp"]},
                        "phoneNumber": {"type": "string", "description": "the sender"},
                        "message": {"type": "string"},
                        "simNumber": {"type": "integer", "minimum": 1, "maximum": 3},
                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                        "name": {"type": "string"},
                        "receivedAt": {"type": "string", "format": "date-time"},
                        "attachments": {"type": "array", "items": {"type": "object"}},
                    },
                },
            }
        },
    },
    {"messages": [{"phoneNumber": "+5215555555555", "message": "Hola"}]},
)

LOGS = example_body(
    {
        "type": "array",
        "maxItems": 100,
        "items": {
            "type": "object",
            "required": ["message"],
            "properties": {
                "message": {"type": "string"},
                "level": {"type": "string", "enum": list(LOG_LEVELS)},
            },
        },
    },
    [{"message": "battery low", "level": "warn"}],
)

PASSWORD = example_body(
    {
        "type": "object",
        "required": ["currentPassword", "newPassword"],
        "properties": {"currentPassword": {"type": "string"}, "newPassword": {"type": "string"}},
    },
    {"currentPassword": "correct horse battery staple", "newPassword": "another long one"},
)
