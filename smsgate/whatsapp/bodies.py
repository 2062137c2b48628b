"""OpenAPI descriptions of what a WhatsApp Web line's bridge sends (its session's state, and
the states of the messages it sent), beside the phones' bodies (mobile/bodies.py)."""

from __future__ import annotations

from smsgate.kit.schema import example_body

SESSION = example_body(
    {
        "type": "object",
        "required": ["state"],
        "properties": {
            "state": {
                "type": "string",
                "enum": ["pairing", "connected", "disconnected", "logged_out"],
            },
            "qr": {"type": "string", "description": "the pairing QR's text (state pairing)"},
            "phoneNumber": {"type": "string", "description": "the line's number, once connected"},
        },
    },
    {"state": "connected", "phoneNumber": "+5215555555555"},
)

STATUSES = example_body(
    {
        "type": "array",
        "maxItems": 500,
        "items": {
            "type": "object",
            "required": ["providerMessageId", "state"],
            "properties": {
                "providerMessageId": {"type": "string", "maxLength": 128},
                "state": {"type": "string", "enum": ["Sent", "Delivered", "Failed"]},
                "error": {"type": "string"},
            },
        },
    },
    [{"providerMessageId": "3EB0C431C26A1916E5B1", "state": "Delivered"}],
)
