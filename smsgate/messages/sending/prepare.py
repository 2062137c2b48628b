"""A send made ready to store: validated completely, without the database, and turned into
the rows it will become (`prepare_message`). Pure: no I/O, so every adapter's send is checked
by the same rules before anything is read or written."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from smsgate.billing.usage import Quota
from smsgate.errors import bad_request
from smsgate.kit import clock, phones, segments
from smsgate.kit.i18n import Text, t
from smsgate.kit.ids import new_id
from smsgate.messages import states
from smsgate.messages.models import history_row
from smsgate.messages.schemas import SendRequest

MAX_TEXT_LENGTH = {"sms": 1600, "whatsapp": 4096, "mms": 5000}
MAX_ENCRYPTED_LENGTH = 16384
MAX_CAPTION_LENGTH = 1024  # WhatsApp's limit for the caption of a media message
MAX_DATA_BYTES = 133  # one PDU of 140 bytes less the port-addressing header
DEFAULT_DATA_PORT = 53739
MAX_MEDIA_URLS = 10
MAX_URL_LENGTH = 2048
MAX_TTL_SECONDS = 30 * 24 * 3600
MAX_SCHEDULE_AHEAD = timedelta(days=366)


@dataclass(frozen=True)
class PreparedMessage:
    """A validated send, as the rows it will become."""

    message: dict[str, Any]
    recipients: list[dict[str, Any]]
    history: list[dict[str, Any]]
    quota: Quota | None = None
    # an MMS's media, fetched before the send is stored: (name, content type, bytes)
    files: tuple[tuple[str | None, str, bytes], ...] = ()


def _request_hash(request: SendRequest) -> str:
    """Fingerprint of what the client asked for, to tell a replay from a different request."""
    canonical = json.dumps(
        request.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _recipients(request: SendRequest, region: str, validate: bool = True) -> list[str]:
    seen: dict[str, str] = {}
    for index, raw in enumerate(request.phone_numbers):
        field = f"phoneNumbers[{index}]"
        if request.is_encrypted:
            if not raw or len(raw) > 512:
                raise bad_request(
                    t("{field}: an encrypted number must be 1 to 512 characters", field=field),
                    field=field,
                )
            number = raw
        else:
            try:
                number = phones.normalize(raw, region)
            except phones.InvalidPhoneNumber as exc:
                kept = "".join(ch for ch in raw if ch.isdigit() or ch in "+*#")
                if validate or not kept:
                    raise bad_request(
                        t("{field}: {exc}", field=field, exc=exc), "invalid_phone_number", field
                    ) from exc
                number = kept  # as the phone itself would dial it
        # one subscriber once, as first written (+52 1 55… and +52 55… are one person)
        seen.setdefault(phones.subscriber(number), number)
    return list(seen.values())


def _check_content(request: SendRequest) -> tuple[str | None, int | None]:
    """Validate the content for the channel; return (content, data port)."""
    channel, text = request.channel, request.message
    if request.media_urls is not None and channel not in ("mms", "whatsapp"):
        raise bad_request(
            t(
                'mediaUrls: only the "mms" and "whatsapp" channels carry media, not "{channel}"',
                channel=channel,
            ),
            field="mediaUrls",
        )
    if request.template is not None and channel != "whatsapp":
        raise bad_request(
            t('template: only "whatsapp" messages use templates, not "{channel}"', channel=channel),
            field="template",
        )
    if request.port is not None and channel != "data":
        raise bad_request(t('port: only "data" messages have a port'), field="port")
    if channel == "data":
        if not text:
            raise bad_request(
                t("message: a data message needs its payload in base64"), field="message"
            )
        if not request.is_encrypted:
            try:
                payload = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise bad_request(t("message: is not valid base64"), field="message") from exc
            if not 1 <= len(payload) <= MAX_DATA_BYTES:
                raise bad_request(
                    t(
                        "message: a data message carries 1 to {max_data_bytes} bytes, this one "
                        "{count}",
                        max_data_bytes=MAX_DATA_BYTES,
                        count=len(payload),
                    ),
                    field="message",
                )
        return text, request.port or DEFAULT_DATA_PORT
    if channel == "whatsapp" and (request.template is not None or request.media_urls):
        _check_whatsapp_extras(request)
    elif channel == "mms":
        _check_media_urls(request.media_urls, t("an mms message"))
    elif text is None or not text.strip():
        raise bad_request(
            t("message: is required for {channel} messages", channel=channel), field="message"
        )
    if text is not None:
        limit = MAX_ENCRYPTED_LENGTH if request.is_encrypted else MAX_TEXT_LENGTH[channel]
        if len(text) > limit:
            raise bad_request(
                t(
                    "message: at most {limit} characters for {channel}, this one has {count}",
                    limit=limit,
                    channel=channel,
                    count=len(text),
                ),
                field="message",
            )
    return text, None


def _check_media_urls(urls: list[str] | None, what: Text) -> None:
    if not urls:
        raise bad_request(
            t("mediaUrls: {what} needs at least one media URL", what=what), field="mediaUrls"
        )
    if len(urls) > MAX_MEDIA_URLS:
        raise bad_request(
            t("mediaUrls: at most {max_media_urls} URLs", max_media_urls=MAX_MEDIA_URLS),
            field="mediaUrls",
        )
    for index, url in enumerate(urls):
        _check_media_url(url, f"mediaUrls[{index}]")


def _check_whatsapp_extras(request: SendRequest) -> None:
    """A WhatsApp message is text, media (`message` is the caption of the first file) or a
    template."""
    if request.template is not None:
        if request.media_urls or request.message:
            raise bad_request(
                t(
                    "template: a template message carries its content in the template; leave out "
                    "message and mediaUrls (put values in template.components)"
                ),
                field="template",
            )
        return
    _check_media_urls(request.media_urls, t("a media message"))
    if request.message is not None and len(request.message) > MAX_CAPTION_LENGTH:
        raise bad_request(
            t(
                "message: a media caption has at most {max_caption_length} characters, this one "
                "has {count}",
                max_caption_length=MAX_CAPTION_LENGTH,
                count=len(request.message),
            ),
            field="message",
        )


def _check_media_url(url: str, field: str) -> None:
    parts = urlsplit(url)
    if len(url) > MAX_URL_LENGTH or parts.scheme != "https" or not parts.hostname:
        raise bad_request(
            t('{field}: "{value}" is not an https URL', field=field, value=url[:100]), field=field
        )


def _valid_until(request: SendRequest, now: datetime) -> datetime | None:
    if request.ttl is not None and request.valid_until is not None:
        raise bad_request(
            t("ttl and validUntil cannot be used together; send one of them"), field="ttl"
        )
    if request.ttl is not None:
        if request.ttl > MAX_TTL_SECONDS:
            raise bad_request(
                t(
                    "ttl: at most {max_ttl_seconds} seconds (30 days)",
                    max_ttl_seconds=MAX_TTL_SECONDS,
                ),
                field="ttl",
            )
        return now + timedelta(seconds=request.ttl)
    if request.valid_until is not None:
        if request.valid_until.tzinfo is None:
            raise bad_request(
                t("validUntil: needs a time zone, such as 2026-01-01T00:00:00Z"), field="validUntil"
            )
        value = clock.as_utc(request.valid_until)
        if value <= now:
            raise bad_request(
                t("validUntil: {value} is in the past", value=clock.iso(value)), field="validUntil"
            )
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    return None


def _schedule_at(
    request: SendRequest, now: datetime, valid_until: datetime | None
) -> datetime | None:
    """When the send may be handed to a phone: a future time, up to a year ahead, before the
    message expires."""
    if request.schedule_at is None:
        return None
    if request.schedule_at.tzinfo is None:
        raise bad_request(
            t("scheduleAt: needs a time zone, such as 2026-01-01T09:00:00-06:00"),
            field="scheduleAt",
        )
    value = clock.as_utc(request.schedule_at)
    value = value.replace(microsecond=value.microsecond // 1000 * 1000)
    if value <= now:
        raise bad_request(
            t("scheduleAt: {value} is in the past", value=clock.iso(value)), field="scheduleAt"
        )
    if value > now + MAX_SCHEDULE_AHEAD:
        raise bad_request(t("scheduleAt: at most a year ahead"), field="scheduleAt")
    if valid_until is not None and value >= valid_until:
        raise bad_request(
            t(
                "scheduleAt: {value} is not before the message expires ({value2}); schedule it "
                "earlier or let it live longer",
                value=clock.iso(value),
                value2=clock.iso(valid_until),
            ),
            field="scheduleAt",
        )
    return value


def prepare_message(
    account_id: str, region: str, request: SendRequest, *, validate_numbers: bool = True
) -> PreparedMessage:
    """Validate a send completely, without the database, and turn it into the rows to write."""
    now = clock.now()
    numbers = _recipients(request, region, validate_numbers)
    content, port = _check_content(request)
    valid_until = _valid_until(request, now)
    schedule_at = _schedule_at(request, now, valid_until)
    # what usage counts: an SMS's parts; one for a data SMS, an MMS, a WhatsApp message, and an
    # encrypted SMS (whose text the server cannot read)
    encoding: str | None = None
    segment_count = 1
    if request.channel == "sms" and content is not None and not request.is_encrypted:
        info = segments.count(content)
        encoding, segment_count = info.encoding, info.segments
    message_id = new_id()
    message: dict[str, Any] = {
        "id": message_id,
        "account_id": account_id,
        "direction": "out",
        "channel": request.channel,
        "state": states.PROCESSING,
        "device_id": request.device_id,
        "content": content,
        "data_port": port,
        "media_urls": request.media_urls,
        "template": request.template.model_dump(exclude_none=True) if request.template else None,
        "sim_number": request.sim_number,
        "priority": request.priority,
        "valid_until": valid_until,
        "schedule_at": schedule_at,
        "with_delivery_report": request.with_delivery_report,
        "is_encrypted": request.is_encrypted,
        "external_id": request.external_id,
        "request_hash": _request_hash(request) if request.external_id else None,
        "encoding": encoding,
        "segments": segment_count,
        "error": None,
        "created_at": now,
        "updated_at": now,
        "assigned_device_id": None,
        "handed_at": None,
        "acknowledged_at": None,
        "cancel_requested_at": None,
        "campaign_id": None,
    }
    recipients = [
        {
            "id": new_id(),
            "account_id": account_id,
            "message_id": message_id,
            "position": position,
            "phone_number": number,
            "state": states.PROCESSING,
            "error": None,
            "updated_at": now,
            "conversation_id": None,
            "provider_message_id": None,
        }
        for position, number in enumerate(numbers)
    ]
    history = [history_row(account_id, message_id, states.PROCESSING, now)]
    return PreparedMessage(message, recipients, history)
