"""The send request and the message answer shapes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from smsgate.kit.clock import iso
from smsgate.kit.schema import Input

Channel = Literal["sms", "mms", "whatsapp", "data"]
MAX_RECIPIENTS = 100
# A stored row as a mapping of column name to value (RowMapping or a plain dict).
Row = Mapping[Any, Any]


class Template(Input):
    """A pre-approved WhatsApp template: the Cloud API's `template` object, with `language` as a
    plain code ("es_MX") and `components` passed through as the Graph API defines them."""

    name: str = Field(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")
    language: str = Field(
        min_length=2, max_length=15, pattern=r"^[A-Za-z]{2,3}(_[A-Za-z0-9]{2,8})?$"
    )
    components: list[dict[str, Any]] | None = Field(default=None, max_length=20)


def template_with_body(name: str, language: str, values: Sequence[str]) -> dict[str, Any]:
    """A send's `template` whose body's variables are `values`, in order (Graph's `components`
    shape: one body component of text parameters; none when there are no values)."""
    template: dict[str, Any] = {"name": name, "language": language}
    if values:
        parameters = [{"type": "text", "text": value} for value in values]
        template["components"] = [{"type": "body", "parameters": parameters}]
    return template


class SendRequest(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"phoneNumbers": ["+5215555555555"], "message": "Hola mundo"}]
        }
    )

    channel: Channel = "sms"
    phone_numbers: list[str] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    message: str | None = None
    media_urls: list[str] | None = None
    sim_number: int | None = Field(default=None, ge=1, le=3)
    priority: int = Field(default=0, ge=-128, le=127)
    ttl: int | None = Field(default=None, gt=0)
    valid_until: datetime | None = Field(default=None, strict=False)
    schedule_at: datetime | None = Field(
        default=None,
        strict=False,
        description="Send no sooner than this (a time with its zone, up to a year ahead): no "
        "phone or line is handed the message before then.",
    )
    with_delivery_report: bool = True
    is_encrypted: bool = False
    external_id: str | None = Field(default=None, min_length=1, max_length=255)
    device_id: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    template: Template | None = None


def recipient_out(row: Row) -> dict[str, Any]:
    out: dict[str, Any] = {"phoneNumber": row["phone_number"], "state": row["state"]}
    if row.get("error"):
        out["error"] = row["error"]
    out["updatedAt"] = iso(row["updated_at"])
    return out


def history_out(row: Row) -> dict[str, Any]:
    out: dict[str, Any] = {"state": row["state"], "at": iso(row["created_at"])}
    if row.get("phone_number") is not None:
        out["phoneNumber"] = row["phone_number"]
    if row.get("error"):
        out["error"] = row["error"]
    rerouted = (row.get("details") or {}).get("reroutedFrom")
    if rerouted:
        out["reroutedFrom"] = rerouted  # back in the queue: this phone took it and fell silent
    return out


# fields of a send that mean nothing on a received message (its externalId is our key for
# de-duplicating the phone's retries, not the client's)
INBOUND_OMITS = ("priority", "withDeliveryReport", "externalId")


def message_out(
    row: Row,
    recipients: Sequence[Row],
    history: Sequence[Row] | None = None,
    attachments: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The seed's message shape, then our additive fields."""
    out: dict[str, Any] = {
        "id": row["id"],
        "state": row["state"],
        "priority": row["priority"],
        "recipients": [recipient_out(r) for r in recipients],
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
        "direction": row["direction"],
        "channel": row["channel"],
        # the phone it was pinned to, or else the phone that took it (None while queued)
        "deviceId": row["device_id"] or row.get("assigned_device_id"),
        "externalId": row["external_id"],
        "message": row["content"],
        "validUntil": iso(row["valid_until"]),
        "scheduleAt": iso(row["schedule_at"]),
        "simNumber": row["sim_number"],
        "isEncrypted": row["is_encrypted"],
        "withDeliveryReport": row["with_delivery_report"],
        "encoding": row["encoding"],
        "segments": row["segments"],
    }
    if row.get("cancel_requested_at") is not None:
        out["cancelRequested"] = True
    if row.get("campaign_id") is not None:
        out["campaignId"] = row["campaign_id"]
    if row["direction"] == "in":
        for outbound_only in INBOUND_OMITS:  # a received message has none of these
            del out[outbound_only]
        if recipients:
            out["sender"] = recipients[0]["phone_number"]
    if row["channel"] == "mms":
        out["mediaUrls"] = row["media_urls"] or []
        if row["direction"] == "in":
            out["attachments"] = list(attachments or [])
    if row["channel"] == "data":
        out["port"] = row["data_port"]
    if row["channel"] == "whatsapp" and row["direction"] == "out":
        out["mediaUrls"] = row["media_urls"] or []
        out["template"] = row.get("template")
    if row["channel"] == "whatsapp" and row["direction"] == "in":
        out["attachments"] = list(attachments or [])
    if row.get("error"):
        out["error"] = row["error"]
    if history is not None:
        out["history"] = [history_out(h) for h in history]
    return out
