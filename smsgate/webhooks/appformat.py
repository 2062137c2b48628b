"""Event payloads as the Android app writes them, for webhooks of format `android` (those the
ecosystem's SDKs register through the third-party API): their receivers parse these fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# the app's time field of each outgoing state
_AT = {"sent": "sentAt", "delivered": "deliveredAt", "failed": "failedAt"}


def payload(event: str, ours: Mapping[str, Any]) -> dict[str, Any]:
    """The app's payload of one of our events. Outgoing events name the message by the id the
    client chose or was given by its send (our externalId, else our id); the deprecated
    `phoneNumber` is kept beside `recipient`/`sender`, as the app still sends it."""
    kind, _, state = event.partition(":")
    number = ours.get("phoneNumber")
    sim = {"simNumber": ours["simNumber"]} if ours.get("simNumber") is not None else {}
    if kind in ("sms", "whatsapp") and state in _AT:
        out: dict[str, Any] = {
            "messageId": ours.get("externalId") or ours.get("messageId"),
            "phoneNumber": number,
            "recipient": number,
            **sim,
            _AT[state]: ours.get("at"),
        }
        if state == "sent":
            out["partsCount"] = -1  # the app's "unknown"
        elif state == "failed":
            # the app writes `reason`; the JavaScript SDK's type reads `error`: both
            out["reason"] = out["error"] = ours.get("error") or "unknown error"
        return out
    if state == "received" and number is not None:
        out = {
            "messageId": ours.get("messageId"),
            "phoneNumber": number,
            "sender": number,
            **sim,
            "receivedAt": ours.get("receivedAt"),
        }
        if ours.get("channel") == "data":
            out["data"] = ours.get("data")
        elif kind == "mms":
            out |= {k: ours[k] for k in ("subject", "message") if ours.get(k) is not None}
        else:
            out["message"] = ours.get("message") or ""
        return out
    if event == "system:ping":
        return {"health": ours.get("health")}
    return dict(ours)
