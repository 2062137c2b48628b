"""The account's plan, usage and what remains; limits on devices, webhooks and keys."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.accounts import preferences
from smsgate.accounts.models import Account, ApiKey
from smsgate.billing import plans, usage
from smsgate.config import Settings
from smsgate.devices.models import Device
from smsgate.errors import ApiError, not_found
from smsgate.kit import clock
from smsgate.kit.i18n import t
from smsgate.webhooks.models import Webhook

LABELS = {"devices": t("devices"), "webhooks": t("webhooks"), "api_keys": t("API keys")}


async def _counts(session: AsyncSession, account_id: str) -> dict[str, int]:
    async def count(model: Any, *conditions: Any) -> int:
        query = select(func.count()).select_from(model).where(model.account_id == account_id)
        for condition in conditions:
            query = query.where(condition)
        return int((await session.execute(query)).scalar_one())

    return {
        "devices": await count(Device),
        "webhooks": await count(Webhook),
        "api_keys": await count(ApiKey, ApiKey.revoked_at.is_(None)),
    }


async def ensure_room(
    session: AsyncSession, account_id: str, kind: str, settings: Settings
) -> None:
    """Refuse (402) creating one more device, webhook or API key than the plan allows.

    The account row is locked first (PostgreSQL; SQLite serializes writers anyway), so two
    creations at once cannot both take the last place."""
    query = select(Account).where(Account.id == account_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    account = (await session.execute(query)).scalar()
    if account is None:
        raise not_found("account")
    plan = plans.get(account.plan, settings.plans_file, settings.default_plan)
    limit = getattr(plan, kind)
    if limit is None:
        return
    used = (await _counts(session, account_id))[kind]
    if used >= limit:
        raise ApiError(
            402,
            t(
                "plan {plan_name} allows {limit} {value} and this account has {used}; delete one "
                "or change plan",
                plan_name=plan.name,
                limit=limit,
                value=LABELS[kind],
                used=used,
            ),
            "plan_limit",
            extra={"limit": limit, "used": used},
        )


async def summary(
    session: AsyncSession, account: Account, settings: Settings, stored_bytes: int
) -> dict[str, Any]:
    """The plan, the period, what was used and what is left; `stored_bytes`: the files the
    account keeps (messages.attachments.stored_bytes), against the plan's storage_mb."""
    plan = plans.get(account.plan, settings.plans_file, settings.default_plan)
    now = clock.now()
    start, end = plans.period(
        account.created_at, now, preferences.zone(preferences.time_zone_of(account))
    )
    metered = await usage.read_period(session, account.id, start.date().isoformat())
    counts = await _counts(session, account.id)
    by_channel = {
        channel: {
            "messages": metered.get(f"messages:{channel}", 0),
            "segments": metered.get(f"segments:{channel}", 0),
        }
        for channel in plans.CHANNELS
    }
    inbound = {channel: metered.get(f"inbound:{channel}", 0) for channel in plans.CHANNELS}
    used = metered.get(usage.QUOTA_METRIC, 0)

    def left(limit: int | None, taken: int) -> int | None:
        return None if limit is None else max(0, limit - taken)

    return {
        "plan": {"id": plan.id, "name": plan.name, "limits": plan.limits()},
        "period": {"start": clock.iso(start), "end": clock.iso(end)},
        "usage": {
            "messages": used,
            "segments": sum(c["segments"] for c in by_channel.values()),
            "byChannel": by_channel,
            "inbound": inbound,
            "webhookDeliveries": metered.get("webhook_deliveries", 0),
            "devices": counts["devices"],
            "webhooks": counts["webhooks"],
            "apiKeys": counts["api_keys"],
            "storageBytes": stored_bytes,
        },
        "remaining": {
            "messages": left(plan.messages_per_period, used),
            "devices": left(plan.devices, counts["devices"]),
            "webhooks": left(plan.webhooks, counts["webhooks"]),
            "apiKeys": left(plan.api_keys, counts["api_keys"]),
            "storageBytes": left(plan.storage_bytes, stored_bytes),
        },
    }


async def daily(
    session: AsyncSession, account_id: str, first: date, last: date
) -> list[dict[str, Any]]:
    days = await usage.read_days(session, account_id, first.isoformat(), last.isoformat())
    out = []
    current = first
    while current <= last:
        metrics = days.get(current.isoformat(), {})
        out.append(
            {
                "date": current.isoformat(),
                "messages": metrics.get(usage.QUOTA_METRIC, 0),
                "segments": sum(v for k, v in metrics.items() if k.startswith("segments:")),
                "inbound": sum(v for k, v in metrics.items() if k.startswith("inbound:")),
                "webhookDeliveries": metrics.get("webhook_deliveries", 0),
            }
        )
        current += timedelta(days=1)
    return out
