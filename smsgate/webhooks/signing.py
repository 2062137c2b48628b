"""How deliveries are signed, in three formats, and `verify()` for receivers.

Every webhook secret looks like `whsec_<base64 of 32 random bytes>`.

- native: body `{id, event, createdAt, timestamp, webhookId, deviceId, payload}`; headers
  `x-smsgw-id`, `x-smsgw-timestamp`, `x-smsgw-event`, `x-smsgw-format: native` and
  `x-smsgw-signature`: lowercase hex HMAC-SHA256 of the exact raw body, keyed with the UTF-8
  bytes of the whole secret: always one value, so that a receiver comparing it with one HMAC
  (as the API reference describes) verifies every delivery. During a rotation's overlap it is
  signed with the previous secret (the one the receiver holds), and `x-smsgw-signature-next`
  carries the new secret's; after the overlap `x-smsgw-signature` is the new secret's. The
  body's `timestamp` equals `x-smsgw-timestamp`, so the signature covers it: refuse deliveries
  whose timestamp is old.
- standard: Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature:
  v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}" keyed with the base64-decoded secret>`
  (space-separated when two secrets are valid).
- android: what the Android app itself sends: body `{id, webhookId, event, deviceId, payload}`,
  `X-Timestamp` (Unix seconds) and `X-Signature`: hex HMAC-SHA256 of body + timestamp, keyed
  with the UTF-8 bytes of the secret (newest secret only: the scheme has no second signature).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

FORMATS = ("native", "standard", "android")
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
DEFAULT_TOLERANCE_SECONDS = 300
NEXT_SIGNATURE = "x-smsgw-signature-next"  # the new secret's, during a rotation's overlap


class InvalidSignature(Exception):
    """The delivery was not signed by a secret you hold, or is too old or too new."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _standard_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def _hex(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def body_for(
    fmt: str,
    *,
    event_id: str,
    event: str,
    created_at: str,
    timestamp: int,
    webhook_id: str,
    device_id: str | None,
    payload: Mapping[str, Any],
) -> bytes:
    document: dict[str, Any]
    if fmt == "android":
        document = {
            "id": event_id,
            "webhookId": webhook_id,
            "event": event,
            "deviceId": device_id,
            "payload": payload,
        }
    else:
        document = {
            "id": event_id,
            "event": event,
            "createdAt": created_at,
            "webhookId": webhook_id,
            "deviceId": device_id,
            "payload": payload,
        }
        if fmt == "native":
            document["timestamp"] = timestamp
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def sign(
    fmt: str, body: bytes, *, event_id: str, event: str, timestamp: int, secrets_: Sequence[str]
) -> dict[str, str]:
    """Headers for one delivery; `secrets_` are the webhook's valid secrets, newest first."""
    stamp = str(timestamp)
    headers = {"Content-Type": "application/json", "User-Agent": "SMSGate-Webhooks/1"}
    if fmt == "standard":
        signed = f"{event_id}.{stamp}.".encode() + body
        signatures = " ".join(
            "v1,"
            + base64.b64encode(hmac.new(_standard_key(s), signed, hashlib.sha256).digest()).decode()
            for s in secrets_
        )
        headers |= {
            "webhook-id": event_id,
            "webhook-timestamp": stamp,
            "webhook-signature": signatures,
        }
    elif fmt == "android":
        headers |= {
            "X-Timestamp": stamp,
            "X-Signature": _hex(secrets_[0].encode(), body + stamp.encode()),
        }
    else:
        headers["x-smsgw-signature"] = _hex(secrets_[-1].encode(), body)  # the oldest valid
        if len(secrets_) > 1:
            headers[NEXT_SIGNATURE] = _hex(secrets_[0].encode(), body)
    headers |= {
        "x-smsgw-id": event_id,
        "x-smsgw-timestamp": stamp,
        "x-smsgw-event": event,
        "x-smsgw-format": fmt,
    }
    return headers


def verify(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a delivery against your webhook secret and return its parsed body.

    `headers` may use any letter case. The format is read from `x-smsgw-format`. Raises
    InvalidSignature for a wrong or missing signature, or a timestamp more than `tolerance`
    seconds from now. Pass the raw body bytes exactly as received: re-encoded JSON will not verify.
    """
    if not secret:
        raise InvalidSignature("no secret given")
    lower = {k.lower(): v for k, v in headers.items()}
    fmt = lower.get("x-smsgw-format", "native")
    stamp = (
        lower.get("webhook-timestamp") or lower.get("x-timestamp") or lower.get("x-smsgw-timestamp")
    )
    if not stamp:
        raise InvalidSignature("missing timestamp header")
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise InvalidSignature("malformed timestamp") from exc
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance")
    if fmt == "standard":
        event_id = lower.get("webhook-id")
        given = lower.get("webhook-signature", "")
        if not event_id or not given:
            raise InvalidSignature("missing webhook-id or webhook-signature")
        signed = f"{event_id}.{stamp}.".encode() + body
        expected = base64.b64encode(
            hmac.new(_standard_key(secret), signed, hashlib.sha256).digest()
        ).decode()
        candidates = [p.split(",", 1)[1] for p in given.split() if p.startswith("v1,")]
    elif fmt == "android":
        expected = _hex(secret.encode(), body + stamp.encode())
        candidates = [lower.get("x-signature", "")]
    else:
        expected = _hex(secret.encode(), body)
        candidates = [lower.get("x-smsgw-signature", ""), lower.get(NEXT_SIGNATURE, "")]
    if not any(c and hmac.compare_digest(c, expected) for c in candidates):
        raise InvalidSignature("no signature matches this secret")
    try:
        document: dict[str, Any] = json.loads(body)
    except ValueError as exc:
        raise InvalidSignature("body is not JSON") from exc
    if fmt == "native" and document.get("timestamp") != timestamp:
        raise InvalidSignature("the signed timestamp differs from the header")
    return document
