"""New messages pinned to a device join their conversations as they are stored (the line is
known): the writer process joins those it wrote after their commit, and the API process those
it could not (sending/process.py, sending/writer.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from smsgate.conversations import joining
from smsgate.conversations.joining import Joining
from smsgate.messages.schemas import Row
from smsgate.storage.db import Database


def joinings(stored: Iterable[tuple[Row, Sequence[Row]]]) -> dict[str, list[Joining]]:
    """By device: the recipients of new messages pinned to one, as they join their threads."""
    by_device: dict[str, list[Joining]] = {}
    for message, recipients in stored:
        if not message["device_id"]:
            continue
        by_device.setdefault(message["device_id"], []).extend(
            joining.sent(
                recipient_id=recipient["id"],
                phone_number=recipient["phone_number"],
                message_id=message["id"],
                account_id=message["account_id"],
                channel=message["channel"],
                sim_number=message["sim_number"],
                content=message["content"],
                created_at=message["created_at"],
            )
            for recipient in recipients
            if recipient["conversation_id"] is None
        )
    return by_device


async def join(database: Database, by_device: dict[str, list[Joining]]) -> None:
    """Join them (`joinings`' answer), all in one transaction."""
    async with database.transaction() as session:
        for device_id, found in by_device.items():
            await joining.join(session, device_id, found)
