"""The permission scopes a credential can carry."""

from __future__ import annotations

from collections.abc import Iterable

from smsgate.errors import bad_request
from smsgate.kit.i18n import t

SEND = "messages:send"
READ_MESSAGES = "messages:read"
DEVICES = "devices"
WEBHOOKS = "webhooks"
KEYS = "keys"
BILLING = "billing"

ALL: dict[str, str] = {
    SEND: "send messages and cancel them",
    READ_MESSAGES: "read messages, their states, the inbox and conversations",
    DEVICES: "list, pair, configure and delete devices",
    WEBHOOKS: "manage webhooks and read their deliveries",
    KEYS: "manage API keys and tokens",
    BILLING: "read the plan, usage and quotas",
}


def parse(requested: Iterable[str] | None, field: str = "scopes") -> frozenset[str]:
    """Validate a requested scope list; None means every scope."""
    if requested is None:
        return frozenset(ALL)
    chosen = list(requested)
    for index, scope in enumerate(chosen):
        if scope not in ALL:
            known = ", ".join(ALL)
            raise bad_request(
                t(
                    '{field}[{index}]: unknown scope "{scope}"; known scopes: {known}',
                    field=field,
                    index=index,
                    scope=scope,
                    known=known,
                ),
                "invalid_scope",
                f"{field}[{index}]",
            )
    if not chosen:
        raise bad_request(
            t("{field}: give at least one scope", field=field), "invalid_scope", field
        )
    return frozenset(chosen)


def dump(scopes: Iterable[str]) -> str:
    return " ".join(sorted(scopes))


def load(text: str) -> frozenset[str]:
    return frozenset(s for s in text.split() if s)
