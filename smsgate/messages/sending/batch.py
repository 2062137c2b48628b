"""The one algorithm that stores a batch of sends, on either database (through a BatchStore).

Every rule about what storing a send means lives here, once: a recipient on the account's
opt-out list is failed before any phone sees it (with its webhook events); a send whose
externalId was taken already is a replay, answered with its original; the plan's quota is
debited per counter for the whole batch at once, and a send over it refused alone; usage is
metered by day and period; recipients, history and an MMS's files are written with the
message. The drivers (sqlite.py, postgres.py) only run statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from sqlalchemy import Table

from smsgate.accounts.models import Account
from smsgate.accounts.preferences import OPT_OUT_BYPASS_EXPEDITED
from smsgate.billing import usage
from smsgate.billing.usage import Quota
from smsgate.conversations.models import OptOut
from smsgate.errors import ApiError
from smsgate.kit import clock, phones
from smsgate.kit.ids import new_id
from smsgate.messages import attachments, states
from smsgate.messages.models import (
    attachments_table,
    history_row,
    history_table,
    messages_table,
    recipients_table,
)
from smsgate.messages.schemas import Row
from smsgate.messages.sending.prepare import PreparedMessage
from smsgate.messages.sending.store import BatchStore, with_defaults
from smsgate.webhooks import events
from smsgate.webhooks.events import NewEvent, outbound_payload, outbound_type

OPTED_OUT = "opted_out"
EXPEDITED_PRIORITY = 100  # an account may let sends of this priority or more pass its opt-outs

_Originals = dict[tuple[str, str], tuple[Row, Sequence[Row]]]


@dataclass
class Done:
    """What a batch write did."""

    created: set[str]  # ids of the new messages
    originals: _Originals  # replays' originals, by (account, externalId)
    rejected: dict[str, int]  # message id -> quota used when it was refused
    # new messages stored otherwise than prepared (recipients on the opt-out list failed, or
    # a resubmitted batch's messages committed earlier): their rows as stored
    written: dict[str, tuple[Row, Sequence[Row]]] = field(default_factory=dict)
    joined: set[str] = field(default_factory=set)  # new messages already in their threads
    join_error: str = ""  # why they could not be joined (the parent then joins them)


async def write(
    store: BatchStore, batch: Sequence[PreparedMessage], resubmitted: bool = False
) -> Done:
    """Store the batch in the store's transaction. `resubmitted`: the same batch was handed to
    a writer that died before answering, so it may have committed already."""
    done = Done(set(), {}, {})
    if resubmitted:
        done.written = await _stored_already(store, [p.message["id"] for p in batch])
        done.created = set(done.written)
        batch = [p for p in batch if p.message["id"] not in done.created]
    failures = await _apply_opt_outs(store, batch)
    created = await store.insert_messages([p.message for p in batch]) if batch else set()
    done.rejected = await _debit(store, batch, created)
    created -= set(done.rejected)
    fresh = [p for p in batch if p.message["id"] in created]
    counters = _usage_rows(fresh)
    if counters:
        await store.run_many(usage.UPSERT, counters)
    if fresh:
        await store.insert(recipients_table, [r for p in fresh for r in p.recipients])
        await store.insert(history_table, [h for p in fresh for h in p.history])
        now = clock.now()
        files = [
            row
            for p in fresh
            if p.files
            for row in attachments.outgoing_rows(
                p.message["account_id"], p.message["id"], p.files, now
            )
        ]
        if files:
            await store.insert(attachments_table, files)
        await _emit(store, [e for p in fresh for e in failures.get(p.message["id"], [])])
    done.created |= created
    for prepared in fresh:
        if prepared.message["id"] in failures:
            done.written[prepared.message["id"]] = (prepared.message, prepared.recipients)
    replays = [
        p for p in batch if p.message["id"] not in created and p.message["id"] not in done.rejected
    ]
    if replays:
        done.originals = await _originals(store, replays)
    return done


async def _stored_already(
    store: BatchStore, ids: list[str]
) -> dict[str, tuple[Row, Sequence[Row]]]:
    found = await store.rows(messages_table, {"id": ids})
    if not found:
        return {}
    recipients = await store.rows(recipients_table, {"message_id": [m["id"] for m in found]})
    return {m["id"]: (m, _of(m["id"], recipients)) for m in found}


def _of(message_id: str, recipients: Sequence[Row]) -> list[Row]:
    return sorted((r for r in recipients if r["message_id"] == message_id), key=_position)


def _position(recipient: Row) -> int:
    return int(recipient["position"])


async def _originals(store: BatchStore, replays: list[PreparedMessage]) -> _Originals:
    wanted = {(p.message["account_id"], p.message["external_id"]) for p in replays}
    found = await store.rows(
        messages_table,
        {
            "account_id": sorted({a for a, _ in wanted}),
            "external_id": sorted({e for _, e in wanted}),
        },
    )
    found = [m for m in found if (m["account_id"], m["external_id"]) in wanted]
    if not found:
        return {}
    recipients = await store.rows(recipients_table, {"message_id": [m["id"] for m in found]})
    return {(m["account_id"], m["external_id"]): (m, _of(m["id"], recipients)) for m in found}


def usage_counts(prepared: PreparedMessage) -> dict[str, int]:
    """What an accepted send counts: one message per recipient still to be sent (opted-out
    recipients are free), and its segments."""
    message = prepared.message
    sending = sum(1 for r in prepared.recipients if r["state"] == states.PROCESSING)
    channel = message["channel"]
    return {
        usage.QUOTA_METRIC: sending,
        f"messages:{channel}": sending,
        f"segments:{channel}": sending * (message["segments"] or 1),
    }


_Debit = tuple[dict[str, Any], dict[str, Any]]  # a send's (ENSURE, DEBIT) parameters


def _debit_of(prepared: PreparedMessage) -> _Debit | None:
    """(ENSURE, DEBIT) parameters when the send's plan limits messages, else None."""
    quota = prepared.quota
    if quota is None or quota.limit is None:
        return None
    counts = usage_counts(prepared)
    if not counts[usage.QUOTA_METRIC]:
        return None
    return usage.debit_params(replace(quota, counts=counts))


@dataclass
class _DebitGroup:
    """The sends of a batch that debit one quota counter (an account's period): one ENSURE and,
    if they all fit, one DEBIT of their total. Only if they do not is each debited in turn, so
    the same sends are refused as one at a time would be (a total fits if and only if every
    debit fits in turn: counts are never negative)."""

    ensure: dict[str, Any]
    total: dict[str, Any]  # DEBIT parameters with the group's total
    sends: list[tuple[PreparedMessage, _Debit]]
    whole: bool = True  # False: the sends disagree on the limit (a plan changed meanwhile)


def _debit_groups(batch: Sequence[PreparedMessage], created: set[str]) -> list[_DebitGroup]:
    """The batch's quota debits by counter, in the counters' lock order."""
    groups: dict[tuple[Any, ...], _DebitGroup] = {}
    for prepared in batch:
        debit = _debit_of(prepared) if prepared.message["id"] in created else None
        if debit is None:
            continue
        ensure, one = debit
        key = (one["account_id"], one["kind"], one["start"], one["metric"])
        group = groups.get(key)
        if group is None:
            groups[key] = _DebitGroup(ensure, dict(one), [(prepared, debit)])
            continue
        group.sends.append((prepared, debit))
        group.total["n"] += one["n"]
        group.whole = group.whole and group.total["limit"] == one["limit"]
    return [groups[key] for key in sorted(groups)]


async def _debit(
    store: BatchStore, batch: Sequence[PreparedMessage], created: set[str]
) -> dict[str, int]:
    """Debit the quota of the new messages; those over it are deleted again. Returns them,
    with the quota used when each was refused."""
    rejected: dict[str, int] = {}
    for group in _debit_groups(batch, created):
        await store.run(usage.ENSURE, group.ensure)
        if group.whole and await store.run(usage.DEBIT, group.total) == 1:
            continue
        for prepared, (ensure, one) in group.sends:
            if await store.run(usage.DEBIT, one) != 1:
                used = await store.value(usage.READ, ensure)
                rejected[prepared.message["id"]] = int(used or 0)
                await store.run(
                    "DELETE FROM messages WHERE id = :id", {"id": prepared.message["id"]}
                )
    return rejected


def _usage_rows(accepted: list[PreparedMessage]) -> list[dict[str, Any]]:
    """The batch's metering, summed per account, bucket and metric, as UPSERT parameters (the
    period's quota of a limited plan was debited already; only its day bucket remains)."""
    totals: dict[tuple[str, str, str, str], int] = {}
    for prepared in accepted:
        quota = prepared.quota
        if quota is None:
            continue
        for metric, n in usage_counts(prepared).items():
            buckets = [("day", quota.day)]
            if not (metric == usage.QUOTA_METRIC and quota.limit is not None):
                buckets.append(("period", quota.period_start))
            for kind, start in buckets:
                key = (quota.account_id, kind, start, metric)
                totals[key] = totals.get(key, 0) + n
    rows = [
        {"id": new_id(), "account_id": a, "kind": k, "start": s, "metric": m, "n": n}
        for (a, k, s, m), n in totals.items()
        if n
    ]
    return usage.in_lock_order(rows)


def refused(prepared: PreparedMessage, used: int) -> ApiError:
    """The answer to a send its quota refused."""
    assert prepared.quota is not None
    quota: Quota = replace(prepared.quota, counts=usage_counts(prepared))
    return usage.exceeded(quota, used)


async def _apply_opt_outs(
    store: BatchStore, batch: Sequence[PreparedMessage]
) -> dict[str, list[NewEvent]]:
    """Fail, before any phone sees them, the recipients on their account's opt-out list (unless
    the account lets priority >= 100 through); return their failure events by message."""
    pairs = {
        (p.message["account_id"], phones.subscriber(r["phone_number"]))
        for p in batch
        if not p.message["is_encrypted"]
        for r in p.recipients
    }
    if not pairs:
        return {}
    found = await store.rows(
        _opt_outs,
        {
            "account_id": sorted({a for a, _ in pairs}),
            "subscriber": sorted({n for _, n in pairs}),
        },
        ("account_id", "subscriber"),
    )
    opted = {(row["account_id"], row["subscriber"]) for row in found} & pairs
    if not opted:
        return {}
    accounts = await store.rows(
        _accounts, {"id": sorted({a for a, _ in opted})}, ("id", "settings")
    )
    bypass = {a["id"] for a in accounts if (a["settings"] or {}).get(OPT_OUT_BYPASS_EXPEDITED)}
    failures: dict[str, list[NewEvent]] = {}
    for prepared in batch:
        message = prepared.message
        account = message["account_id"]
        if message["is_encrypted"]:
            continue
        if account in bypass and message["priority"] >= EXPEDITED_PRIORITY:
            continue
        for recipient in prepared.recipients:
            if (account, phones.subscriber(recipient["phone_number"])) not in opted:
                continue
            recipient["state"], recipient["error"] = states.FAILED, OPTED_OUT
            prepared.history.append(_history(message, recipient["phone_number"], states.FAILED))
            failures.setdefault(message["id"], []).append(_failed_event(message, recipient))
        aggregate = states.message_state(r["state"] for r in prepared.recipients)
        if aggregate != message["state"]:
            message["state"] = aggregate
            message["error"] = OPTED_OUT if aggregate == states.FAILED else None
            prepared.history.append(_history(message, None, aggregate))
    return failures


_opt_outs = cast(Table, OptOut.__table__)
_accounts = cast(Table, Account.__table__)


def _failed_event(message: Row, recipient: Row) -> NewEvent:
    return NewEvent(
        message["account_id"],
        outbound_type(message["channel"], states.FAILED) or "sms:failed",
        message["device_id"],
        outbound_payload(
            message["id"],
            message["external_id"],
            recipient["phone_number"],
            states.FAILED,
            OPTED_OUT,
            message["channel"],
            message["device_id"],
            message["sim_number"],
            message["created_at"],
        ),
    )


async def _emit(store: BatchStore, new: list[NewEvent]) -> None:
    """The events, and a delivery for each webhook that wants one (webhooks.events.emit's rule,
    through the store)."""
    if not new:
        return
    now = clock.now()
    rows = events.event_rows(new, now)
    await store.insert(events.events_table, with_defaults(events.events_table, rows))
    hooks = await store.rows(
        events.webhooks_table,
        {"account_id": sorted({e.account_id for e in new})},
        events.HOOK_COLUMNS,
    )
    deliveries = events.delivery_rows(rows, hooks, now)
    if deliveries:
        await store.insert(
            events.deliveries_table, with_defaults(events.deliveries_table, deliveries)
        )


def _history(message: Row, number: str | None, state: str) -> dict[str, Any]:
    return history_row(
        message["account_id"],
        message["id"],
        state,
        message["created_at"],
        phone_number=number,
        error=OPTED_OUT if state == states.FAILED else None,
    )
