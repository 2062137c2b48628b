"""The one place tenant filters are added to queries."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, false

from smsgate.kit.ids import is_id

S = TypeVar("S", bound=Select[*tuple[Any, ...]])


def of_account(query: S, model: Any, account_id: str) -> S:
    """Restrict a query of a tenant table to one account's rows."""
    return query.where(model.account_id == account_id)


def owned(query: S, model: Any, account_id: str, object_id: str) -> S:
    """One object by id, only if it belongs to the account (a malformed id matches nothing)."""
    if not is_id(object_id):
        return query.where(false())
    return of_account(query, model, account_id).where(model.id == object_id)
