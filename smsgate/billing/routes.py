"""HTTP endpoints of billing (scope `billing`)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import Query

from smsgate.accounts.auth import AppSettings, BillingScope
from smsgate.accounts.service import get_account
from smsgate.billing import service
from smsgate.errors import bad_request
from smsgate.kit import clock
from smsgate.kit.i18n import t
from smsgate.kit.responses import api_router
from smsgate.messages import attachments
from smsgate.storage.db import ReadSession

router = api_router(tags=["billing"])
MAX_DAYS = 366


@router.get("/api/billing")
async def billing(
    principal: BillingScope, session: ReadSession, settings: AppSettings
) -> dict[str, Any]:
    account = await get_account(session, principal.account_id)
    stored = await attachments.stored_bytes(session, account.id)
    return await service.summary(session, account, settings, stored)


def _day(value: str | None, field: str, default: date) -> date:
    if value is None:
        return default
    try:
        return date.fromisoformat(value[:10])
    except ValueError as exc:
        raise bad_request(
            t("{field}: must be a date such as 2026-11-01", field=field), field=field
        ) from exc


@router.get("/api/billing/usage")
async def usage_by_day(
    principal: BillingScope,
    session: ReadSession,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
    granularity: str = "day",
) -> dict[str, Any]:
    if granularity != "day":
        raise bad_request(t('granularity: only "day" is supported'), field="granularity")
    today = clock.now().date()
    last = _day(to, "to", today)
    first = _day(from_, "from", last - timedelta(days=29))
    if first > last:
        raise bad_request(t("from: must not be after to"), field="from")
    if (last - first).days >= MAX_DAYS:
        raise bad_request(
            t("from/to: at most {max_days} days at once", max_days=MAX_DAYS), field="from"
        )
    return {
        "granularity": "day",
        "data": await service.daily(session, principal.account_id, first, last),
    }
