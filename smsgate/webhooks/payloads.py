"""The payload of every webhook event, as types: the code that builds a payload declares it with
one of these (mypy holds it to the type), and the event catalog (`GET /api/webhooks/events`)
shows each as the JSON Schema generated from the same type. tests/webhooks/test_catalog.py
validates every delivered payload against the catalog as served.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

# every time in a payload: UTC, ISO-8601, with `Z` (kit/clock.iso)
Time = Annotated[str, Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")]
Channel = Literal["sms", "data", "mms", "whatsapp"]
OutboundState = Literal["sent", "delivered", "failed"]
_CLOSED = ConfigDict(extra="forbid")


@with_config(_CLOSED)
class Outbound(TypedDict):
    """One recipient of a sent message changed state."""

    messageId: str
    externalId: str | None
    phoneNumber: str
    state: OutboundState
    error: NotRequired[str]
    channel: Channel
    deviceId: str | None
    simNumber: int | None
    at: Time


@with_config(_CLOSED)
class Inbound(TypedDict):
    """A message arrived: an SMS, a data SMS (`data`, `port`), an MMS (`message`: its subject
    or text) or a WhatsApp message (`senderName`: the profile name WhatsApp gave, if any)."""

    messageId: str
    phoneNumber: str
    message: str | None
    channel: Channel
    deviceId: str
    simNumber: int | None
    receivedAt: Time
    senderName: NotRequired[str]
    data: NotRequired[str | None]
    port: NotRequired[int | None]


@with_config(_CLOSED)
class AttachmentInfo(TypedDict):
    partId: Any
    contentType: Any
    name: Any
    size: Any
    hasData: bool


@with_config(_CLOSED)
class MmsDownloaded(TypedDict):
    """The phone downloaded a received MMS: its parts (their bytes are kept by the server);
    `messageId` is null when the MMS itself never reached the server."""

    messageId: str | None
    phoneNumber: str | None
    subject: str | None
    body: str | None
    attachments: list[AttachmentInfo]
    channel: Literal["mms"]
    deviceId: str
    receivedAt: Time | None


@with_config(_CLOSED)
class Ping(TypedDict):
    """A phone's health ping; `test: true` when sent by the webhook's test button."""

    deviceId: str | None
    health: dict[str, Any] | None
    test: NotRequired[bool]


@with_config(_CLOSED)
class Presence(TypedDict):
    deviceId: str
    name: str
    status: Literal["online", "offline"]
    lastSeenAt: Time | None


@with_config(_CLOSED)
class WebhookDisabled(TypedDict):
    webhookId: str
    url: str
    reason: str
    failingSince: Time | None
    disabledAt: Time


@with_config(_CLOSED)
class CampaignFinished(TypedDict):
    """A campaign finished: `done` (no message of it still processing) or `cancelled`; its
    recipients by state, and how many rows were rejected."""

    campaignId: str
    name: str
    state: Literal["done", "cancelled"]
    total: int
    accepted: int
    rejected: int
    counts: dict[str, int]
    finishedAt: Time | None


Payload = Outbound | Inbound | MmsDownloaded | Ping | Presence | WebhookDisabled | CampaignFinished

# event -> (what happened, its payload's type)
EVENTS: dict[str, tuple[str, Any]] = {
    "sms:received": ("an SMS (or data SMS) arrived on a phone", Inbound),
    "sms:sent": ("a phone sent an SMS to one recipient", Outbound),
    "sms:delivered": ("the carrier confirmed delivery to one recipient", Outbound),
    "sms:failed": ("sending to one recipient failed, with the reason in error", Outbound),
    "mms:received": ("an MMS arrived on a phone", Inbound),
    "mms:downloaded": ("a received MMS was downloaded with its attachments", MmsDownloaded),
    "whatsapp:received": ("a WhatsApp message arrived on a line", Inbound),
    "whatsapp:sent": ("a WhatsApp message left for one recipient", Outbound),
    "whatsapp:delivered": ("WhatsApp confirmed delivery to one recipient", Outbound),
    "whatsapp:failed": ("a WhatsApp message to one recipient failed", Outbound),
    "system:ping": ("a phone's periodic health ping (and the test button)", Ping),
    "device:online": ("a device came online", Presence),
    "device:offline": ("a device went silent past the offline window", Presence),
    "webhook:disabled": (
        "another webhook of the account was disabled (failing for days, 410 Gone); its events "
        "are held until it is enabled again",
        WebhookDisabled,
    ),
    "campaign:finished": (
        "a campaign finished: every message of it was sent or failed, or it was cancelled",
        CampaignFinished,
    ),
}


def schema(kind: Any) -> dict[str, Any]:
    """The JSON Schema of a payload type."""
    found: dict[str, Any] = TypeAdapter(kind).json_schema()
    return found


def fields(kind: Any) -> str:
    """A payload's fields in one line, `?` after the optional ones: `{messageId, error?, …}`."""
    shape = schema(kind)
    required = set(shape.get("required", ()))
    names = [name + ("" if name in required else "?") for name in shape["properties"]]
    return "{" + ", ".join(names) + "}"


def catalog() -> list[dict[str, Any]]:
    """The catalog's entries: event, description, payload (its fields) and schema."""
    return [
        {"event": name, "description": text, "payload": fields(kind), "schema": schema(kind)}
        for name, (text, kind) in EVENTS.items()
    ]
