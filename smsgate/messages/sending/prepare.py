"""A send made ready to store: the rows it will become."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smsgate.billing.usage import Quota


@dataclass(frozen=True)
class PreparedMessage:
    """A validated send, as the rows it will become."""

    message: dict[str, Any]
    recipients: list[dict[str, Any]]
    history: list[dict[str, Any]]
    quota: Quota | None = None
    # an MMS's media, fetched before the send is stored: (name, content type, bytes)
    files: tuple[tuple[str | None, str, bytes], ...] = ()
