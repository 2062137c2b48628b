"""Opt-outs: the numbers a customer asked not to be written to (by a keyword such as BAJA
or STOP, or added by the owner); the send path fails them."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.config import Settings
from smsgate.conversations.models import OptOut
from smsgate.errors import bad_request
from smsgate.kit import clock, phones
from smsgate.kit.i18n import t
from smsgate.kit.ids import is_id, new_id
from smsgate.storage.db import insert_ignoring_conflicts
from smsgate.storage.tenancy import of_account

opt_outs_table = OptOut.__table__


def _keyword(text: str) -> str:
    return re.sub(r"\s+", "", text).upper().strip(".!¡¿?")


def keywords(csv: str) -> frozenset[str]:
    return frozenset(_keyword(k) for k in csv.split(",") if k.strip())


async def apply_keywords(
    session: AsyncSession, account_id: str, number: str, text: str | None, settings: Settings
) -> str | None:
    """An inbound STOP-like word opts the number out, a START-like word back in."""
    if not text or len(text) > 40:
        return None
    word = _keyword(text)
    if word in keywords(settings.opt_out_keywords):
        await add_opt_out(session, account_id, number, "inbound", word)
        return "opted_out"
    if word in keywords(settings.opt_in_keywords):
        await remove_opt_out(session, account_id, number)
        return "opted_in"
    return None


async def add_opt_out(
    session: AsyncSession, account_id: str, number: str, source: str, keyword: str | None
) -> None:
    await session.execute(
        insert_ignoring_conflicts(
            opt_outs_table,  # type: ignore[arg-type]
            session.get_bind().dialect.name,
            "account_id",
            "subscriber",
        ).values(
            id=new_id(),
            account_id=account_id,
            phone_number=number,
            subscriber=phones.subscriber(number),
            source=source,
            keyword=keyword,
            created_at=clock.now(),
        )
    )


async def remove_opt_out(session: AsyncSession, account_id: str, number: str) -> bool:
    gone = await session.execute(
        delete(OptOut).where(
            OptOut.account_id == account_id, OptOut.subscriber == phones.subscriber(number)
        )
    )
    return bool(gone.rowcount)  # type: ignore[attr-defined]


async def list_opt_outs(
    session: AsyncSession, account_id: str, limit: int, cursor: str | None
) -> tuple[list[OptOut], str | None]:
    if cursor is not None and not is_id(cursor):
        raise bad_request(t("cursor: is not a cursor this API returned"), field="cursor")
    query = of_account(select(OptOut), OptOut, account_id)
    if cursor:
        query = query.where(OptOut.id < cursor)
    rows = list(
        (await session.execute(query.order_by(OptOut.id.desc()).limit(limit + 1))).scalars()
    )
    page = rows[:limit]
    return page, (page[-1].id if len(rows) > limit else None)


def opt_out_out(entry: OptOut) -> dict[str, Any]:
    return {
        "phoneNumber": entry.phone_number,
        "source": entry.source,
        "keyword": entry.keyword,
        "createdAt": clock.iso(entry.created_at),
    }
