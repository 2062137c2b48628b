"""The WhatsApp Business Cloud API (Meta's Graph API): sending, and reading its webhooks.

Only facts of the Graph API live here: request bodies, its error codes in words, the
`X-Hub-Signature-256` check and the shape of its webhook payloads. The base URL is a setting
(`SMSGATE_WHATSAPP_GRAPH_URL`), so tests point it at a local fake.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from smsgate.kit import safe_http
from smsgate.whatsapp.lines import Outcome, Outgoing

GRAPH_TIMEOUT = 20.0
RATE_LIMIT_RETRY = 2.0  # seconds, when the Graph API says "too many" without saying how long

# Graph API error codes, in words a sender can act on.
ERRORS: dict[int, str] = {
    100: "the WhatsApp Cloud API refused a parameter of this message",
    131008: "a required parameter is missing",
    131009: "a parameter value is not valid (check the number and the media URL)",
    131021: "the recipient is this line's own number",
    131026: "the recipient cannot receive this message (not on WhatsApp, or an old app)",
    131030: "the recipient is not in this test number's allowed list",
    131031: "the WhatsApp Business account is locked",
    131042: "there is a payment problem on the WhatsApp Business account",
    131045: "the line's phone number is not registered with the Cloud API",
    131047: "more than 24 hours passed since the recipient last wrote: send a template",
    131051: "WhatsApp does not support this message type",
    131052: "WhatsApp could not download the media the recipient sent",
    131053: "WhatsApp could not fetch the media URL (it must be public https)",
    132000: "the template's parameters do not match the template",
    132001: "the template does not exist in this language",
    132005: "the template's text is too long once filled in",
    132007: "the template breaks WhatsApp's content policy",
    132012: "the template's parameters have the wrong format",
    132015: "the template is paused for low quality",
    132016: "the template is disabled",
    133010: "the line's phone number is not registered with WhatsApp",
    190: "the line's access token expired or is wrong: update accessToken in the line's settings",
    200: "the line's access token lacks the whatsapp_business_messaging permission",
    368: "the line is temporarily blocked for policy violations",
    131048: "WhatsApp limited this line for spam: too many of its messages were blocked",
}
# Temporary refusals: nothing was sent, the same message may be tried again later.
RATE_LIMITED: dict[int, str] = {
    4: "the app reached its Graph API call limit",
    80007: "the WhatsApp Business account reached its rate limit",
    130429: "the line reached its messages-per-second limit",
    131056: "too many messages to this recipient in a short time",
}

IMAGE = {"jpg", "jpeg", "png", "webp"}
VIDEO = {"mp4", "3gp"}
AUDIO = {"mp3", "ogg", "aac", "amr", "m4a", "opus"}


@dataclass(frozen=True)
class Credentials:
    phone_number_id: str
    access_token: str
    app_secret: str
    verify_token: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Credentials:
        return cls(
            str(data.get("phoneNumberId") or ""),
            str(data.get("accessToken") or ""),
            str(data.get("appSecret") or ""),
            str(data.get("verifyToken") or ""),
        )

    def complete(self) -> bool:
        return bool(self.phone_number_id and self.access_token and self.app_secret)


def media_kind(url: str) -> str:
    path = urlsplit(url).path.lower()
    extension = path.rsplit(".", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ""
    if extension in IMAGE:
        return "image"
    if extension in VIDEO:
        return "video"
    if extension in AUDIO:
        return "audio"
    return "document"


def bodies(message: Outgoing) -> list[dict[str, Any]]:
    """The Graph API request bodies of one message: one, or one per media file."""
    base = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    to = message.to.lstrip("+")
    if message.template is not None:
        template: dict[str, Any] = {
            "name": message.template["name"],
            "language": {"code": message.template["language"]},
        }
        if message.template.get("components"):
            template["components"] = message.template["components"]
        return [{**base, "to": to, "type": "template", "template": template}]
    if message.media_urls:
        out = []
        for index, url in enumerate(message.media_urls):
            kind = media_kind(url)
            media: dict[str, Any] = {"link": url}
            if index == 0 and message.text and kind != "audio":
                media["caption"] = message.text
            if kind == "document":
                media["filename"] = urlsplit(url).path.rsplit("/", 1)[-1] or "file"
            out.append({**base, "to": to, "type": kind, kind: media})
        return out
    text = {"body": message.text or "", "preview_url": "://" in (message.text or "")}
    return [{**base, "to": to, "type": "text", "text": text}]


def describe_error(error: Mapping[str, Any]) -> tuple[str, bool]:
    """(the recipient's error text, whether it is a temporary refusal) of a Graph API error."""
    code = error.get("code")
    details = error.get("error_data")
    said = (details.get("details") if isinstance(details, Mapping) else None) or error.get(
        "message"
    )
    said = str(said or error.get("title") or "no details")[:300]
    if isinstance(code, int) and code in RATE_LIMITED:
        return f"rate limited by WhatsApp: {RATE_LIMITED[code]} ({code}: {said})", True
    words = ERRORS.get(code) if isinstance(code, int) else None
    return f"{words or 'WhatsApp refused the message'} ({code}: {said})", False


class GraphApi:
    """Sends through one line's phone number."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, credentials: Credentials) -> None:
        self.http = http
        self.url = f"{base_url.rstrip('/')}/{credentials.phone_number_id}/messages"
        self.headers = {"Authorization": f"Bearer {credentials.access_token}"}

    async def send(self, message: Outgoing) -> Outcome:
        provider_id: str | None = None
        parts = bodies(message)
        for index, body in enumerate(parts):
            outcome = await self._post(body)
            if outcome.error is not None or outcome.retry_after is not None:
                if index == 0:
                    return outcome
                # earlier files went out: never retry, say what happened
                return Outcome(
                    provider_id=provider_id,
                    error=f"only {index} of {len(parts)} files were sent: {outcome.error}",
                )
            provider_id = outcome.provider_id
        return Outcome(provider_id=provider_id)

    async def _post(self, body: dict[str, Any]) -> Outcome:
        try:
            response = await self.http.post(
                self.url, json=body, headers=self.headers, timeout=GRAPH_TIMEOUT
            )
        except httpx.ConnectError as exc:  # nothing reached Meta: safe to try again
            return Outcome(
                error=f"could not connect to the WhatsApp Cloud API: {exc}",
                retry_after=RATE_LIMIT_RETRY,
            )
        except httpx.HTTPError as exc:  # it may have been sent: never sent twice, so fail
            return Outcome(
                error=f"the WhatsApp Cloud API did not answer ({type(exc).__name__}); "
                "the message may or may not have been sent"
            )
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code == 200 and isinstance(data, Mapping):
            sent = data.get("messages")
            if isinstance(sent, list) and sent and isinstance(sent[0], Mapping):
                return Outcome(provider_id=str(sent[0].get("id")))
        error = data.get("error") if isinstance(data, Mapping) else None
        if isinstance(error, Mapping):
            text, temporary = describe_error(error)
            if temporary or response.status_code == 429:
                wait = _retry_after(response) or RATE_LIMIT_RETRY
                return Outcome(error=text, retry_after=wait)
            return Outcome(error=text)
        if response.status_code == 429:
            return Outcome(
                error="rate limited by the WhatsApp Cloud API (HTTP 429)",
                retry_after=_retry_after(response) or RATE_LIMIT_RETRY,
            )
        return Outcome(
            error=f"the WhatsApp Cloud API answered HTTP {response.status_code} "
            "without an error; the message may or may not have been sent"
        )


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


async def download(
    http: httpx.AsyncClient,
    base_url: str,
    credentials: Credentials,
    media: Media,
    limit: int,
    *,
    allow_private: bool,
) -> bytes | None:
    """The bytes of a received file (Graph API: the media id gives a short-lived URL, fetched
    with the same token); None when it is over `limit` bytes or cannot be fetched.

    The media id comes in a webhook and the URL in Meta's answer: the id must be an id (no
    path, query or fragment to steer the Graph request), and the URL goes through the same
    address check as webhooks (kit/safe_http.py), so the line's token never reaches an
    internal address."""
    if not MEDIA_ID.fullmatch(media.media_id):
        return None
    headers = {"Authorization": f"Bearer {credentials.access_token}"}
    try:
        found = await http.get(
            f"{base_url.rstrip('/')}/{media.media_id}", headers=headers, timeout=GRAPH_TIMEOUT
        )
        info = found.json() if found.status_code == 200 else None
        if not isinstance(info, Mapping) or not isinstance(info.get("url"), str):
            return None
        if int(info.get("file_size") or 0) > limit:
            return None
        data, _ = await safe_http.fetch(
            http,
            info["url"],
            allow_private=allow_private,
            time_limit=GRAPH_TIMEOUT,
            max_bytes=limit,
            headers=headers,
        )
        return data
    except (httpx.HTTPError, ValueError, safe_http.FetchFailed):
        return None


# --- webhooks -------------------------------------------------------------------------------


def signature_ok(app_secret: str, raw: bytes, header: str | None) -> bool:
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the app secret>`."""
    if not app_secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[7:].strip().lower())


@dataclass(frozen=True)
class Media:
    """A file a customer sent: Meta gives its id; the bytes are fetched with the line's token."""

    media_id: str
    mime_type: str
    filename: str | None


@dataclass(frozen=True)
class Inbound:
    provider_id: str
    sender: str  # E.164 with +
    text: str | None
    kind: str
    received_at: datetime | None
    profile_name: str | None
    media: Media | None = None


MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
MEDIA_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")  # Meta's media ids are digits


@dataclass(frozen=True)
class Status:
    provider_id: str
    state: str  # the app's state name: Sent, Delivered, Failed
    error: str | None
    at: datetime | None


STATUS_STATES = {"sent": "Sent", "delivered": "Delivered", "read": "Delivered", "failed": "Failed"}


def _time(value: object) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(str(value)), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _text_of(message: Mapping[str, Any]) -> str | None:
    kind = message.get("type")
    part = message.get(str(kind))
    if kind == "text" and isinstance(part, Mapping):
        return str(part.get("body") or "")
    if kind == "button" and isinstance(part, Mapping):
        return str(part.get("text") or "")
    if kind == "interactive" and isinstance(part, Mapping):
        for key in ("button_reply", "list_reply"):
            reply = part.get(key)
            if isinstance(reply, Mapping):
                return str(reply.get("title") or "")
    if kind == "reaction" and isinstance(part, Mapping):
        return str(part.get("emoji") or "")
    if kind == "location" and isinstance(part, Mapping):
        return f"[location] {part.get('latitude')},{part.get('longitude')}"
    if isinstance(part, Mapping) and part.get("caption"):
        return f"[{kind}] {part['caption']}"
    return f"[{kind}]"


def changes(payload: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The `value` of each `messages` change of a webhook payload."""
    entries = payload.get("entry")
    for item in entries if isinstance(entries, list) else []:
        found = item.get("changes") if isinstance(item, Mapping) else None
        for change in found if isinstance(found, list) else []:
            value = change.get("value") if isinstance(change, Mapping) else None
            if isinstance(value, Mapping) and change.get("field", "messages") == "messages":
                yield value


def phone_number_id(value: Mapping[str, Any]) -> str | None:
    metadata = value.get("metadata")
    found = metadata.get("phone_number_id") if isinstance(metadata, Mapping) else None
    return str(found) if found is not None else None


def inbound_of(value: Mapping[str, Any]) -> list[Inbound]:
    names: dict[str, str] = {}
    for contact in value.get("contacts") or []:
        if isinstance(contact, Mapping) and isinstance(contact.get("profile"), Mapping):
            names[str(contact.get("wa_id"))] = str(contact["profile"].get("name") or "")
    out = []
    for message in value.get("messages") or []:
        if not isinstance(message, Mapping) or not message.get("from") or not message.get("id"):
            continue
        sender = str(message["from"])
        kind = str(message.get("type") or "text")
        part = message.get(kind)
        media = None
        if kind in MEDIA_KINDS and isinstance(part, Mapping) and part.get("id"):
            filename = part.get("filename")
            media = Media(
                str(part["id"]),
                str(part.get("mime_type") or "application/octet-stream")[:200],
                str(filename)[:255] if filename else None,
            )
        out.append(
            Inbound(
                provider_id=str(message["id"]),
                sender="+" + sender.lstrip("+"),
                text=_text_of(message),
                kind=str(message.get("type") or "text"),
                received_at=_time(message.get("timestamp")),
                profile_name=names.get(sender) or None,
                media=media,
            )
        )
    return out


def statuses_of(value: Mapping[str, Any]) -> list[Status]:
    out = []
    for status in value.get("statuses") or []:
        if not isinstance(status, Mapping) or not status.get("id"):
            continue
        state = STATUS_STATES.get(str(status.get("status")))
        if state is None:
            continue
        error = None
        errors = status.get("errors")
        if state == "Failed":
            first = errors[0] if isinstance(errors, list) and errors else None
            error = describe_error(first)[0] if isinstance(first, Mapping) else "failed"
        out.append(Status(str(status["id"]), state, error, _time(status.get("timestamp"))))
    return out
