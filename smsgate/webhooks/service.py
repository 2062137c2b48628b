"""Webhook endpoints: create, change, rotate secrets, deliveries, retry, test, replay."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.billing import service as billing
from smsgate.config import Settings
from smsgate.devices.service import get_device
from smsgate.errors import bad_request, not_found
from smsgate.kit import clock, safe_http
from smsgate.kit.crypto import decrypt, encrypt
from smsgate.kit.i18n import t
from smsgate.kit.ids import is_id, new_id
from smsgate.storage.tenancy import of_account, owned
from smsgate.webhooks import signing
from smsgate.webhooks.events import CATALOG, NewEvent, deliveries_table, emit
from smsgate.webhooks.models import Delivery, DeliveryAttempt, Event, Webhook
from smsgate.webhooks.payloads import Ping, WebhookDisabled

MAX_WEBHOOKS_LIST = 100
MAX_OVERLAP_SECONDS = 7 * 24 * 3600
DEFAULT_OVERLAP_SECONDS = 24 * 3600
DELIVERY_STATUSES = ("pending", "held", "succeeded", "failed")
MAX_REPLAY = 10_000


async def check_url(url: str, settings: Settings, field: str = "url") -> str:
    url = url.strip()
    if len(url) > 2048:
        raise bad_request(t("{field}: at most 2048 characters", field=field), "invalid_url", field)
    if any(ord(c) < 0x21 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in url):
        raise bad_request(
            t("{field}: holds a space or a control character; percent-encode it", field=field),
            "invalid_url",
            field,
        )
    try:
        await safe_http.safe_addresses(url, settings.webhooks_allow_private, must_resolve=False)
    except safe_http.UnsafeTarget as exc:
        hint = (
            ""
            if settings.webhooks_allow_private
            else t(
                "; a self-hosted server reaches its own network once its operator sets "
                "SMSGATE_WEBHOOKS_ALLOW_PRIVATE=true"
            )
        )
        raise bad_request(
            t('{field}: "{value}" {exc}{hint}', field=field, value=url[:200], exc=exc, hint=hint),
            "invalid_url",
            field,
        ) from exc
    return url


def check_events(events: list[str]) -> list[str]:
    if not events:
        raise bad_request(t("events: give at least one event"), "invalid_event", "events")
    for index, name in enumerate(events):
        if name not in CATALOG:
            raise bad_request(
                t(
                    'events[{index}]: unknown event "{name}"; see GET /api/webhooks/events',
                    index=index,
                    name=name,
                ),
                "invalid_event",
                f"events[{index}]",
            )
    return list(dict.fromkeys(events))


def check_format(fmt: str) -> str:
    if fmt not in signing.FORMATS:
        raise bad_request(
            t(
                'format: must be one of {value}, not "{fmt}"',
                value=", ".join(signing.FORMATS),
                fmt=fmt,
            ),
            field="format",
        )
    return fmt


async def create(
    session: AsyncSession,
    account_id: str,
    settings: Settings,
    *,
    url: str,
    events: list[str],
    device_id: str | None,
    fmt: str,
) -> tuple[Webhook, str]:
    url = await check_url(url, settings)
    events = check_events(events)
    fmt = check_format(fmt)
    await billing.ensure_room(session, account_id, "webhooks", settings)
    if device_id is not None:
        await get_device(session, account_id, device_id)
    secret = signing.new_secret()
    hook = Webhook(
        account_id=account_id,
        url=url,
        events=events,
        device_id=device_id,
        format=fmt,
        enabled=True,
        secret_encrypted=encrypt(settings.secret_key, secret),
    )
    session.add(hook)
    await session.flush()
    return hook, secret


async def change(
    session: AsyncSession, hook: Webhook, settings: Settings, given: dict[str, Any]
) -> None:
    """Apply the fields given (snake_case names of the PATCH body); each is checked as on
    creation. Re-enabling clears the failure count; disabling records that the owner did."""
    if "url" in given:
        if given["url"] is None:
            raise bad_request(t("url: cannot be null"), field="url")
        hook.url = await check_url(given["url"], settings)
    if "events" in given:
        hook.events = check_events(given["events"] or [])
    if "format" in given:
        hook.format = check_format(given["format"] or "")
    if "device_id" in given:
        if given["device_id"] is not None:
            await get_device(session, hook.account_id, given["device_id"])
        hook.device_id = given["device_id"]
    if given.get("enabled") is not None and given["enabled"] != hook.enabled:
        if given["enabled"]:
            await enable(session, hook)
        else:
            await disable_for(session, hook, "disabled by its owner", notify=False)
    hook.updated_at = clock.now()
    await session.flush()


async def get(session: AsyncSession, account_id: str, webhook_id: str) -> Webhook:
    hook = (await session.execute(owned(select(Webhook), Webhook, account_id, webhook_id))).scalar()
    if hook is None:
        raise not_found("webhook")
    return hook


async def list_all(session: AsyncSession, account_id: str) -> list[Webhook]:
    query = of_account(select(Webhook), Webhook, account_id).order_by(Webhook.id)
    return list((await session.execute(query)).scalars())


async def delete(session: AsyncSession, hook: Webhook) -> None:
    """Delete the webhook: its events are no longer sent (deliveries due go with it)."""
    await session.delete(hook)
    await session.flush()


async def find_by_client_id(session: AsyncSession, account_id: str, hook_id: str) -> Webhook | None:
    """A webhook by the id its client chose (the third-party API's), else by ours."""
    query = of_account(select(Webhook), Webhook, account_id)
    found = (await session.execute(query.where(Webhook.client_id == hook_id))).scalar()
    if found is None and is_id(hook_id):
        found = (await session.execute(query.where(Webhook.id == hook_id))).scalar()
    return found


async def upsert_by_client_id(
    session: AsyncSession,
    account_id: str,
    settings: Settings,
    client_id: str | None,
    *,
    url: str,
    events: list[str],
    device_id: str | None,
    fmt: str,
) -> Webhook:
    """The webhook the client calls `client_id`, created, or changed to these fields when it
    exists (the third-party API's POST, which its clients repeat to update)."""
    existing = await find_by_client_id(session, account_id, client_id) if client_id else None
    if existing is None:
        hook, _ = await create(
            session, account_id, settings, url=url, events=events, device_id=device_id, fmt=fmt
        )
        hook.client_id = client_id
        await session.flush()
        return hook
    await change(
        session, existing, settings, {"url": url, "events": events, "device_id": device_id}
    )
    return existing


async def delete_by_client_id(session: AsyncSession, account_id: str, hook_id: str) -> None:
    """Delete the webhook by the client's id or ours; an unknown one is already gone."""
    hook = await find_by_client_id(session, account_id, hook_id)
    if hook is not None:
        await delete(session, hook)


async def due_count(session: AsyncSession, now: datetime) -> int:
    """Deliveries due now that no worker is sending (the workers' backlog), every account's."""
    query = (
        select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.status == "pending",
            Delivery.next_attempt_at <= now,
            or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
        )
    )
    return int((await session.execute(query)).scalar_one())


async def count_by_status(session: AsyncSession) -> list[tuple[str, int]]:
    """(status, count) of every delivery kept: a walk of the table, for a caller that makes it
    seldom."""
    query = select(Delivery.status, func.count()).group_by(Delivery.status)
    return [(status, count) for status, count in (await session.execute(query)).all()]


def secrets_of(hook: Webhook, settings: Settings) -> list[str]:
    """The secrets that sign now, newest first (two during a rotation's overlap)."""
    found = [decrypt(settings.secret_key, hook.secret_encrypted)]
    if (
        hook.previous_secret_encrypted
        and hook.previous_secret_expires_at
        and hook.previous_secret_expires_at > clock.now()
    ):
        found.append(decrypt(settings.secret_key, hook.previous_secret_encrypted))
    return found


async def rotate(
    session: AsyncSession, hook: Webhook, settings: Settings, overlap_seconds: int
) -> str:
    if not 0 <= overlap_seconds <= MAX_OVERLAP_SECONDS:
        raise bad_request(
            t(
                "overlapSeconds: must be between 0 and {max_overlap_seconds}",
                max_overlap_seconds=MAX_OVERLAP_SECONDS,
            ),
            field="overlapSeconds",
        )
    secret = signing.new_secret()
    if overlap_seconds:
        hook.previous_secret_encrypted = hook.secret_encrypted
        hook.previous_secret_expires_at = clock.now() + timedelta(seconds=overlap_seconds)
    else:
        hook.previous_secret_encrypted = None
        hook.previous_secret_expires_at = None
    hook.secret_encrypted = encrypt(settings.secret_key, secret)
    hook.updated_at = clock.now()
    await session.flush()
    return secret


async def deliveries(
    session: AsyncSession, hook: Webhook, status: str | None, limit: int, cursor: str | None
) -> tuple[list[tuple[Delivery, Event, list[DeliveryAttempt]]], str | None]:
    if status is not None and status not in DELIVERY_STATUSES:
        raise bad_request(
            t("status: must be one of {value}", value=", ".join(DELIVERY_STATUSES)), field="status"
        )
    if cursor is not None and not is_id(cursor):
        raise bad_request(t("cursor: is not a cursor this API returned"), field="cursor")
    query = (
        select(Delivery, Event)
        .join(Event, Event.id == Delivery.event_id)
        .where(Delivery.webhook_id == hook.id, Delivery.account_id == hook.account_id)
    )
    if status:
        query = query.where(Delivery.status == status)
    if cursor:
        query = query.where(Delivery.id < cursor)
    rows = (await session.execute(query.order_by(Delivery.id.desc()).limit(limit + 1))).all()
    page = rows[:limit]
    ids = [d.id for d, _ in page]
    attempts: dict[str, list[DeliveryAttempt]] = {i: [] for i in ids}
    if ids:
        found = await session.execute(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_(ids))
            .order_by(DeliveryAttempt.number)
        )
        for attempt in found.scalars():
            attempts[attempt.delivery_id].append(attempt)
    result = [(d, e, attempts[d.id]) for d, e in page]
    return result, (page[-1][0].id if len(rows) > limit else None)


async def retry(session: AsyncSession, hook: Webhook, delivery_id: str) -> Delivery:
    delivery = (
        await session.execute(
            owned(select(Delivery), Delivery, hook.account_id, delivery_id).where(
                Delivery.webhook_id == hook.id
            )
        )
    ).scalar()
    if delivery is None:
        raise not_found("delivery")
    if delivery.status == "pending":
        delivery.next_attempt_at = clock.now()
    else:
        delivery.status = "pending"
        delivery.next_attempt_at = clock.now()
        delivery.lease_until = None
    delivery.updated_at = clock.now()
    await session.flush()
    return delivery


async def test(session: AsyncSession, hook: Webhook) -> str:
    """A system:ping for this webhook only (other webhooks do not get the test)."""
    now = clock.now()
    event_id = new_id()
    session.add(
        Event(
            id=event_id,
            account_id=hook.account_id,
            type="system:ping",
            device_id=hook.device_id,
            payload=Ping(deviceId=hook.device_id, health={"status": "pass"}, test=True),
            created_at=now,
        )
    )
    await session.flush()
    delivery_id = new_id()
    await session.execute(
        insert(deliveries_table).values(
            id=delivery_id,
            account_id=hook.account_id,
            webhook_id=hook.id,
            event_id=event_id,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )
    return delivery_id


async def replay(session: AsyncSession, hook: Webhook, since: datetime, until: datetime) -> int:
    """Deliver again, once, every event of the range this webhook subscribes to."""
    if until <= since:
        raise bad_request(t("until: must be after since"), field="until")
    query = (
        of_account(select(Event.id, Event.type, Event.device_id), Event, hook.account_id)
        .where(Event.created_at >= since, Event.created_at < until, Event.type.in_(hook.events))
        .order_by(Event.id)
        .limit(MAX_REPLAY + 1)
    )
    found = [
        event_id
        for event_id, _, device_id in (await session.execute(query)).all()
        if hook.device_id is None or device_id == hook.device_id
    ]
    if len(found) > MAX_REPLAY:
        raise bad_request(
            t("the range holds more than {max_replay} events; narrow it", max_replay=MAX_REPLAY),
            field="since",
        )
    now = clock.now()
    if found:
        await session.execute(
            insert(deliveries_table),
            [
                {
                    "id": new_id(),
                    "account_id": hook.account_id,
                    "webhook_id": hook.id,
                    "event_id": event_id,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for event_id in found
            ],
        )
    return len(found)


async def disable_for(
    session: AsyncSession, hook: Webhook, reason: str, *, notify: bool = True
) -> None:
    """Stop sending to a webhook: its undelivered events are held, and events after this are
    held for it too, until it is enabled again; with `notify`, the account's other webhooks
    get a `webhook:disabled` event."""
    now = clock.now()
    hook.enabled, hook.disabled_reason, hook.updated_at = False, reason, now
    await session.flush()
    await session.execute(
        update(Delivery)
        .where(Delivery.webhook_id == hook.id, Delivery.status == "pending")
        .values(status="held", lease_until=None, updated_at=now)
    )
    if notify:
        payload = WebhookDisabled(
            webhookId=hook.client_id or hook.id,
            url=hook.url,
            reason=reason,
            failingSince=clock.iso(hook.failing_since),
            disabledAt=clock.iso(now),
        )
        await emit(session, [NewEvent(hook.account_id, "webhook:disabled", None, payload)])


async def enable(session: AsyncSession, hook: Webhook) -> int:
    """Send to a webhook again, starting with every event held for it while it was disabled
    (in one go: nothing to replay by hand). Returns how many were held."""
    now = clock.now()
    hook.enabled, hook.disabled_reason, hook.updated_at = True, None, now
    hook.consecutive_failures, hook.failing_since = 0, None
    released = await session.execute(
        update(Delivery)
        .where(Delivery.webhook_id == hook.id, Delivery.status == "held")
        .values(status="pending", next_attempt_at=now, updated_at=now)
    )
    return int(released.rowcount or 0)  # type: ignore[attr-defined]


def webhook_out(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "events": hook.events,
        "deviceId": hook.device_id,
        "format": hook.format,
        "enabled": hook.enabled,
        "disabledReason": hook.disabled_reason,
        "createdAt": clock.iso(hook.created_at),
        "updatedAt": clock.iso(hook.updated_at),
        "secretRotatedUntil": clock.iso(hook.previous_secret_expires_at)
        if hook.previous_secret_expires_at and hook.previous_secret_expires_at > clock.now()
        else None,
    }


def delivery_out(
    delivery: Delivery, event: Event, attempts: list[DeliveryAttempt]
) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "eventId": event.id,
        "event": event.type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "nextAttemptAt": clock.iso(delivery.next_attempt_at)
        if delivery.status == "pending"
        else None,
        "lastStatusCode": delivery.last_status_code,
        "lastError": delivery.last_error,
        "deliveredAt": clock.iso(delivery.delivered_at),
        "createdAt": clock.iso(delivery.created_at),
        "history": [
            {
                "number": a.number,
                "at": clock.iso(a.created_at),
                "statusCode": a.status_code,
                "latencyMs": a.latency_ms,
                "error": a.error,
                "response": a.response_excerpt,
            }
            for a in attempts
        ],
    }


__all__ = ["NewEvent", "emit"]
