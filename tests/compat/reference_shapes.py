"""What the ecosystem's clients decode from the third-party API's answers: field names, JSON
types, required fields and allowed values, as the reference server's OpenAPI document
(`sms-gateway-3rdparty-openapi.json`) gives them, restated here as JSON schemas. Typed clients
(the Go client decodes `LogEntry.id` into a uint64) fail on an answer that differs; fields we
add are allowed, as the reference's schemas allow them."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
OBJECT: Schema = {"type": "object"}


def obj(required: tuple[str, ...] = (), **properties: Schema) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def one_of(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


PROCESSING_STATE = one_of(
    "Pending", "Cancelling", "Cancelled", "Processed", "Sent", "Delivered", "Failed"
)
MESSAGE = obj(
    ("deviceId", "id", "recipients", "state"),
    id=STRING,
    deviceId=STRING,
    state=PROCESSING_STATE,
    recipients=array(
        obj(("phoneNumber", "state"), phoneNumber=STRING, state=PROCESSING_STATE, error=STRING)
    ),
    states=OBJECT,
    isEncrypted=BOOLEAN,
    isHashed=BOOLEAN,
    textMessage=obj(("text",), text=STRING),
    dataMessage=obj(("data", "port"), data=STRING, port=INTEGER),
    hashedMessage=obj(("hash",), hash=STRING),
)
TOKEN = obj(
    access_token=STRING, refresh_token=STRING, token_type=STRING, expires_at=STRING, id=STRING
)
HEALTH = obj(
    status=one_of("pass", "warn", "fail"), version=STRING, releaseId=INTEGER, checks=OBJECT
)
DEVICE = obj(
    id=STRING,
    name=STRING,
    createdAt=STRING,
    updatedAt=STRING,
    deletedAt=STRING,
    lastSeen=STRING,
    simCards=array(
        obj(
            carrierName=STRING,
            iccid=STRING,
            phoneNumber=STRING,
            simNumber=INTEGER,
            slotIndex=INTEGER,
        )
    ),
)
INCOMING = obj(
    ("contentPreview", "createdAt", "id", "sender", "type"),
    id=STRING,
    type=one_of("SMS", "DATA_SMS", "MMS", "MMS_DOWNLOADED"),
    sender=STRING,
    recipient=STRING,
    contentPreview=STRING,
    simNumber=INTEGER,
    createdAt=STRING,
)
LOG_ENTRY = obj(
    id=INTEGER,
    createdAt=STRING,
    message=STRING,
    module=STRING,
    priority=one_of("DEBUG", "INFO", "WARN", "ERROR"),
    context=OBJECT,
)
SETTINGS = obj(
    encryption=obj(passphrase=STRING),
    gateway=obj(
        cloud_url=STRING, private_token=STRING, notification_channel=one_of("AUTO", "SSE_ONLY")
    ),
    logs=obj(lifetime_days=INTEGER),
    messages=obj(
        limit_period=one_of("Disabled", "PerMinute", "Per30Minutes", "PerHour", "PerDay"),
        limit_value=INTEGER,
        log_lifetime_days=INTEGER,
        processing_order=one_of("LIFO", "FIFO"),
        send_interval_min=INTEGER,
        send_interval_max=INTEGER,
        sim_selection_mode=one_of("OSDefault", "RoundRobin", "Random"),
        work_hours_enabled=BOOLEAN,
        work_hours_start=STRING,
        work_hours_end=STRING,
    ),
    ping=obj(interval_seconds=INTEGER),
    receiver=obj(content_provider_enabled=BOOLEAN),
    webhooks=obj(internet_required=BOOLEAN, retry_count=INTEGER, signing_key=STRING),
)
WEBHOOK = obj(
    ("event", "url"),
    id=STRING,
    url=STRING,
    # the document says string; the reference server writes null for a webhook of every device
    # (its Go field is a *string), and the npm SDK's WebHook type requires the key
    deviceId={"type": ["string", "null"]},
    event=one_of(
        "sms:received",
        "sms:data-received",
        "sms:sent",
        "sms:delivered",
        "sms:failed",
        "sms:cancelled",
        "system:ping",
        "mms:received",
        "mms:downloaded",
        "app:started",
        "sms:batch:received",
        "sms:batch:data-received",
        "mms:batch:received",
        "mms:batch:downloaded",
    ),
)

# (method, path under /api/3rdparty/v1) -> (the reference's success status, its answer)
ANSWERS: dict[tuple[str, str], tuple[int, Schema]] = {
    ("post", "/auth/token"): (201, TOKEN),
    ("post", "/auth/token/refresh"): (201, TOKEN),
    ("get", "/health"): (200, HEALTH),
    ("get", "/devices"): (200, array(DEVICE)),
    ("get", "/inbox"): (200, array(INCOMING)),
    ("get", "/logs"): (200, array(LOG_ENTRY)),
    ("post", "/messages"): (202, MESSAGE),
    ("get", "/messages"): (200, array(MESSAGE)),
    ("get", "/messages/{id}"): (200, MESSAGE),
    ("delete", "/messages/{id}"): (200, MESSAGE),
    ("get", "/settings"): (200, SETTINGS),
    ("patch", "/settings"): (200, OBJECT),
    ("post", "/webhooks"): (201, WEBHOOK),
    ("get", "/webhooks"): (200, array(WEBHOOK)),
}
