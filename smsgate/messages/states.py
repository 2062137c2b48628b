"""Message and recipient states.

    processing ──► sent ──► delivered
        │            └────► failed
        ├──────────────────► failed     (with an error)
        └──────────────────► cancelled  (only before a phone took it)

    inbound messages: received

States only move forward; a message's state derives from its recipients'. One exception: a
recipient failed with `device_timeout` (its phone said nothing for a day) moves on to sent or
delivered when that phone reports after all.
"""

from __future__ import annotations

from collections.abc import Iterable

PROCESSING = "processing"
SENT = "sent"
DELIVERED = "delivered"
FAILED = "failed"
CANCELLED = "cancelled"
RECEIVED = "received"

ALL = (PROCESSING, SENT, DELIVERED, FAILED, CANCELLED, RECEIVED)
FINAL = frozenset({DELIVERED, FAILED, CANCELLED, RECEIVED})

_RANK = {PROCESSING: 0, SENT: 1, DELIVERED: 2, FAILED: 2, CANCELLED: 2, RECEIVED: 2}


DEVICE_TIMEOUT = "device_timeout"  # the error of recipients a silent phone took (worker/jobs.py)


def can_move(current: str, new: str, error: str | None = None) -> bool:
    """Forward only; cancelled only from processing; nothing leaves a final state, except a
    failure with `device_timeout` (`error`: the recipient's current error), which nobody knew to
    be one: the phone's sent or delivered still applies."""
    if current == FAILED and (error or "").startswith(DEVICE_TIMEOUT):
        return new in (SENT, DELIVERED)
    if current in FINAL or current == new:
        return False
    if new == CANCELLED:
        return current == PROCESSING
    return _RANK[new] > _RANK[current]


def message_state(recipient_states: Iterable[str]) -> str:
    """A message is as far as its least advanced recipient; failed only if all failed."""
    states = list(recipient_states)
    if not states:
        return PROCESSING
    if any(s == PROCESSING for s in states):
        return PROCESSING
    if all(s == CANCELLED for s in states):
        return CANCELLED
    if all(s in (FAILED, CANCELLED) for s in states):
        return FAILED
    if any(s == SENT for s in states):
        return SENT
    return DELIVERED if any(s == DELIVERED for s in states) else FAILED
