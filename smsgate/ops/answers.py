"""The shapes of the API's main answers, for the OpenAPI document.

Documentation only: the routes build their answers with the `*_out` functions next to them (no
model is validated at request time, which would cost the hot paths), and the tests hold the two
together by checking real answers against these schemas (tests/test_openapi.py, and the API
fuzzer's response-schema check). No unknown field is allowed (`additionalProperties: false`), so
an answer that starts carrying a field the document does not describe (a key's hash, a webhook's
secret after its creation) fails those tests.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.alias_generators import to_camel

T = TypeVar("T")
Time = str  # ISO 8601, UTC, milliseconds: 2026-04-24T10:00:00.000Z


class Output(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class Page(Output, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


class Account(Output):
    id: str
    email: str
    name: str | None
    plan: str
    region: str
    created_at: Time
    authenticated_by: Literal["key", "token", "session"] = Field(
        description="The credential this request came with."
    )
    scopes: list[str]


class Key(Output):
    id: str
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it.")
    scopes: list[str]
    created_at: Time
    last_used_at: Time | None


class KeyCreated(Key):
    key: str = Field(description="The key itself (`sk_…`): shown in this answer only.")


class KeyRevoked(Output):
    id: str
    revoked: bool


class TokenPair(Output):
    access_token: str = Field(description="`at_…`, a bearer credential (15 minutes by default).")
    refresh_token: str = Field(description="`rt_…`, for POST /api/auth/token/refresh, once.")
    token_type: Literal["Bearer"]
    expires_at: Time
    refresh_expires_at: Time
    scopes: list[str]
    id: str = Field(description="The token family, for GET and DELETE /api/auth/tokens.")


class TokenFamily(Output):
    id: str
    scopes: list[str]
    created_at: Time
    last_refreshed_at: Time | None
    expires_at: Time


class Webhook(Output):
    id: str
    url: str
    events: list[str]
    device_id: str | None
    format: str
    enabled: bool
    disabled_reason: str | None
    created_at: Time
    updated_at: Time
    secret_rotated_until: Time | None = Field(
        description="Until then deliveries are signed with the previous secret too."
    )


class WebhookCreated(Webhook):
    secret: str = Field(description="The signing secret (`whsec_…`): shown in this answer only.")


class Pairing(Output):
    server_url: str
    token: str = Field(description="The phone's one-time registration token.")
    code: str
    expires_at: Time
    qr_svg: str


class Device(Output):
    id: str
    name: str
    type: Literal["android", "whatsapp"]
    status: str
    last_seen_at: Time | None
    sim_cards: list[dict[str, Any]]
    app_version: str | None
    created_at: Time
    paired_at: Time | None
    whatsapp: dict[str, Any] | None = Field(
        default=None, description="A WhatsApp line's provider details (secrets as hints only)."
    )


class DeviceCreated(Device):
    pairing: Pairing


class Recipient(Output):
    phone_number: str
    state: str
    error: str | None = None
    updated_at: Time


class HistoryEntry(Output):
    state: str
    at: Time
    phone_number: str | None = None
    error: str | None = None
    rerouted_from: str | None = None


class Attachment(Output):
    id: str
    content_type: str
    name: str | None
    size: int | None
    url: str | None


class Message(Output):
    id: str
    state: Literal["processing", "sent", "delivered", "failed", "cancelled", "received"]
    priority: int | None = Field(default=None, description="Sent messages only.")
    recipients: list[Recipient]
    created_at: Time
    updated_at: Time
    direction: Literal["in", "out"]
    channel: Literal["sms", "mms", "whatsapp", "data"]
    device_id: str | None = Field(
        description="The phone or line it was pinned to, or else the one that took it; "
        "null while no phone has taken it."
    )
    external_id: str | None = Field(default=None, description="Sent messages only.")
    message: str | None
    valid_until: Time | None
    schedule_at: Time | None = Field(description="A scheduled send: handed to no phone before.")
    sim_number: int | None
    is_encrypted: bool
    with_delivery_report: bool | None = Field(default=None, description="Sent messages only.")
    encoding: Literal["GSM-7", "UCS-2"] | None
    segments: int | None
    cancel_requested: bool | None = None
    campaign_id: str | None = Field(default=None, description="The campaign it is part of.")
    sender: str | None = Field(default=None, description="Received messages: who sent it.")
    media_urls: list[str] | None = None
    attachments: list[Attachment] | None = None
    port: int | None = None
    template: dict[str, Any] | None = None
    error: str | None = None
    history: list[HistoryEntry] | None = Field(
        default=None, description="GET /api/v1/messages/{message_id} only."
    )
    conversation_id: str | None = Field(
        default=None, description="A reply (POST /api/conversations/{id}/send): its thread."
    )


class Conversation(Output):
    id: str
    contact: str = Field(description="The other party's number (E.164, or as the network gave it).")
    display_name: str | None
    contact_name: str | None = Field(description="The name of the contact with this number.")
    device_id: str | None = Field(
        description="The phone or line of the thread; null once it was deleted (the thread "
        "and its messages stay, and take no reply)."
    )
    sim_number: int | None
    channel: Literal["sms", "whatsapp"]
    last_message_id: str | None
    last_message_preview: str | None
    last_message_direction: Literal["in", "out"] | None
    last_message_at: Time | None
    unread_count: int
    read_up_to: str | None = Field(description="The last message marked read.")
    archived: bool
    created_at: Time


class OptOut(Output):
    phone_number: str
    source: Literal["api", "inbound"] = Field(
        description="How it was added: through the API, or by an inbound STOP-like keyword."
    )
    keyword: str | None
    created_at: Time


class OptOutChange(Output):
    phone_number: str
    opted_out: bool


class AccountSettings(Output):
    opt_out_bypass_expedited: bool
    allowed_countries: list[str]
    reroute_stalled: bool
    time_zone: str = Field(
        description="The account's IANA time zone: the dashboard's times and the usage days"
    )


class Contact(Output):
    id: str
    name: str | None
    phone_number: str = Field(description="As written when added.")
    tags: list[str]
    fields: dict[str, str]
    opted_out: bool = Field(description="On the opt-out list (read from it when shown).")
    created_at: Time
    updated_at: Time


class Deleted(Output):
    id: str
    deleted: bool


class RejectedRow(Output):
    row: int = Field(description="The file's row (its header is row 1), or the item's (from 1).")
    phone_number: str
    reason: str = Field(
        description="invalid_phone_number, opted_out, duplicate, missing_variable, "
        "destination_not_allowed, or the send path's refusal code (quota_exceeded, …)."
    )


class ImportPreview(Output):
    row: int
    phone_number: str
    name: str | None
    tags: list[str]
    fields: dict[str, str]


class ContactImport(Output):
    total: int
    created: int
    updated: int
    rejected: list[RejectedRow]
    preview: list[ImportPreview] = Field(description="The first three rows as they are read.")
    dry_run: bool


class TemplateBinding(Output):
    name: str
    language: str


class MessageTemplate(Output):
    id: str
    name: str
    message: str = Field(description="The text, with {variables}.")
    channel: Literal["sms", "whatsapp"]
    whatsapp_template: TemplateBinding | None
    variables: list[str]
    created_at: Time
    updated_at: Time


class PreviewRow(Output):
    row: int
    message: str | None = Field(description="The text the row sends; null: variables missing.")
    encoding: Literal["GSM-7", "UCS-2"] | None = None
    segments: int | None = None
    length: int | None = None
    missing: list[str] | None = None


class Preview(Output):
    data: list[PreviewRow]


class DraftRow(Output):
    row: int
    phone_number: str
    message: str
    encoding: Literal["GSM-7", "UCS-2"]
    segments: int


class DraftPreview(Output):
    rows: list[DraftRow] = Field(description="The first three rows as they would be sent.")
    messages: int = Field(description="Rows whose text is complete (before number checks).")
    segments: int = Field(description="What they would count against the plan.")
    columns: list[str]
    phone_column: str | None = Field(description="The number column found; null: choose one.")


class Campaign(Output):
    id: str
    name: str
    state: Literal["draft", "scheduled", "sending", "done", "cancelled"]
    channel: Literal["sms", "whatsapp"]
    message: str | None
    template_id: str | None
    device_ids: list[str]
    total: int = Field(description="Rows received, every upload.")
    accepted: int = Field(description="Messages created.")
    rejected: list[RejectedRow]
    counts: dict[str, int] = Field(description="Recipients by state.")
    created_at: Time
    schedule_at: Time | None
    finished_at: Time | None
    preview: DraftPreview | None = Field(default=None, description="Drafts only.")


# --- the phones' API (docs/android-app-protocol.md): fields are absent rather than null, so
# the optional ones below allow no null


def _absent(description: str | None = None) -> Any:
    """An optional field of the phones' API: absent when it has no value, never null."""
    return Field(default=None, description=description)


class WireText(Output):
    text: str


class WireData(Output):
    data: str = Field(description="base64")
    port: int


class WireWhatsApp(Output):
    text: str = _absent()
    media_urls: list[str] = _absent()
    template: dict[str, Any] = _absent()


class PulledMessage(Output):
    """One element of GET /api/mobile/v1/message, as the app reads it."""

    id: str
    phone_numbers: list[str] = Field(description="Only the recipients still to be sent.")
    with_delivery_report: bool
    is_encrypted: bool
    priority: int
    state: Literal["Pending", "Cancelling"]
    created_at: Time
    text_message: WireText = _absent()
    message: str = _absent("The same text, for older apps.")
    data_message: WireData = _absent()
    whatsapp_message: WireWhatsApp = _absent("WhatsApp lines only.")
    sim_number: int = _absent()
    valid_until: Time = _absent()
    schedule_at: Time = _absent()


class PulledMessages(RootModel[list[PulledMessage]]):
    pass


class Registered(Output):
    id: str
    token: str = Field(description="The device token: Bearer on every later call.")
    login: str


class DeviceIdentity(Output):
    id: str
    name: str


class DeviceInfo(Output):
    external_ip: str | None
    device: DeviceIdentity = _absent("With a valid device token.")


class AppWebhook(Output):
    id: str
    url: str
    event: str


class AppWebhooks(RootModel[list[AppWebhook]]):
    pass


class LoginCode(Output):
    code: str
    valid_until: Time


class InboxAccepted(Output):
    ids: list[str]


class LogsAccepted(Output):
    accepted: int


# (method, path) -> (its success statuses, the answer's shape)
RESPONSES: dict[tuple[str, str], tuple[tuple[str, ...], type[BaseModel]]] = {
    ("get", "/api/auth/me"): (("200",), Account),
    ("post", "/api/keys"): (("201",), KeyCreated),
    ("get", "/api/keys"): (("200",), Page[Key]),
    ("delete", "/api/keys/{key_id}"): (("200",), KeyRevoked),
    ("post", "/api/auth/token"): (("201",), TokenPair),
    ("post", "/api/auth/token/refresh"): (("200",), TokenPair),
    ("get", "/api/auth/tokens"): (("200",), Page[TokenFamily]),
    ("post", "/api/webhooks"): (("201",), WebhookCreated),
    ("get", "/api/webhooks"): (("200",), Page[Webhook]),
    ("get", "/api/webhooks/{webhook_id}"): (("200",), Webhook),
    ("patch", "/api/webhooks/{webhook_id}"): (("200",), Webhook),
    ("post", "/api/devices/android"): (("201",), DeviceCreated),
    ("get", "/api/devices"): (("200",), Page[Device]),
    ("get", "/api/devices/{device_id}"): (("200",), Device),
    ("patch", "/api/devices/{device_id}"): (("200",), Device),
    ("post", "/api/v1/send"): (("202", "200"), Message),  # 200: an externalId replayed
    ("get", "/api/v1/messages"): (("200",), Page[Message]),
    ("get", "/api/v1/messages/{message_id}"): (("200",), Message),
    ("post", "/api/v1/messages/{message_id}/cancel"): (("200",), Message),
    ("patch", "/api/v1/messages/{message_id}"): (("200",), Message),
    ("get", "/api/v1/inbox"): (("200",), Page[Message]),
    ("get", "/api/conversations"): (("200",), Page[Conversation]),
    ("get", "/api/conversations/{conversation_id}"): (("200",), Conversation),
    ("patch", "/api/conversations/{conversation_id}"): (("200",), Conversation),
    ("get", "/api/conversations/{conversation_id}/messages"): (("200",), Page[Message]),
    ("post", "/api/conversations/{conversation_id}/send"): (("202", "200"), Message),
    ("post", "/api/conversations/{conversation_id}/read"): (("200",), Conversation),
    ("get", "/api/opt-outs"): (("200",), Page[OptOut]),
    ("post", "/api/opt-outs"): (("201",), OptOutChange),
    ("delete", "/api/opt-outs/{phone_number}"): (("200",), OptOutChange),
    ("get", "/api/account/settings"): (("200",), AccountSettings),
    ("post", "/api/contacts"): (("201",), Contact),
    ("get", "/api/contacts"): (("200",), Page[Contact]),
    ("get", "/api/contacts/{contact_id}"): (("200",), Contact),
    ("patch", "/api/contacts/{contact_id}"): (("200",), Contact),
    ("delete", "/api/contacts/{contact_id}"): (("200",), Deleted),
    ("post", "/api/contacts/import"): (("200",), ContactImport),
    ("post", "/api/templates"): (("201",), MessageTemplate),
    ("get", "/api/templates"): (("200",), Page[MessageTemplate]),
    ("get", "/api/templates/{template_id}"): (("200",), MessageTemplate),
    ("patch", "/api/templates/{template_id}"): (("200",), MessageTemplate),
    ("delete", "/api/templates/{template_id}"): (("200",), Deleted),
    ("post", "/api/templates/{template_id}/preview"): (("200",), Preview),
    ("post", "/api/campaigns"): (("201",), Campaign),
    ("get", "/api/campaigns"): (("200",), Page[Campaign]),
    ("get", "/api/campaigns/{campaign_id}"): (("200",), Campaign),
    ("post", "/api/campaigns/{campaign_id}/recipients"): (("200",), Campaign),
    ("post", "/api/campaigns/{campaign_id}/cancel"): (("200",), Campaign),
    ("post", "/api/campaigns/{campaign_id}/send"): (("200",), Campaign),
    ("patch", "/api/account/settings"): (("200",), AccountSettings),
    ("post", "/api/mobile/v1/device"): (("201",), Registered),
    ("get", "/api/mobile/v1/device"): (("200",), DeviceInfo),
    ("get", "/api/mobile/v1/message"): (("200",), PulledMessages),
    ("get", "/api/mobile/v1/webhooks"): (("200",), AppWebhooks),
    ("get", "/api/mobile/v1/user/code"): (("200",), LoginCode),
    ("post", "/api/mobile/v1/inbox"): (("202",), InboxAccepted),
    ("post", "/api/mobile/v1/logs"): (("202",), LogsAccepted),
}
