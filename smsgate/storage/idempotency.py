"""Idempotency keys for creating requests: an `Idempotency-Key` header makes a retry safe.

A client that sends a creating request (registering a webhook) with an `Idempotency-Key` and gets
no answer (a timeout, a dropped connection) sends it again with the same key. The first success
is remembered for 24 hours per account and key: the same key with the same request gets the
stored answer back, byte for byte (status and body, plus `Idempotent-Replayed: true`), and
nothing is created twice; the same key with a different request gets 409. Only successes are
remembered: a request refused (400, 402, 404, ...) can be corrected and sent again with its key.
After 24 hours the key is free again.

The record is written in the request's own transaction, so it exists exactly when what the
request created does. Two concurrent requests with one key: on SQLite the process's one
connection runs them one after the other, so the second finds the first's record; on PostgreSQL
the second's insert waits on the unique (account, key) index until the first commits, fails, and
the second rolls back what it created and answers with the first's record. Stored answers are
encrypted with the server key (a webhook's answer holds its signing secret).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import Integer, String, Text, UniqueConstraint, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from smsgate.config import Settings
from smsgate.errors import ApiError, bad_request
from smsgate.kit import clock
from smsgate.kit.crypto import decrypt, encrypt
from smsgate.kit.i18n import t
from smsgate.kit.responses import JSONResponse
from smsgate.storage.base import Base, CreatedMixin, IdMixin, TenantMixin
from smsgate.storage.db import rollback

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEEP_FOR = timedelta(hours=24)
MAX_LENGTH = 255
_FORMAT = re.compile(r"[\x21-\x7e]+")  # visible ASCII: a UUID, a ULID, an order number


class IdempotencyRecord(IdMixin, CreatedMixin, TenantMixin, Base):
    """A creating request's first success, kept 24 hours under its account and key."""

    __tablename__ = "idempotency_keys"
    account_index = False  # the unique constraint below starts with account_id
    __table_args__ = (UniqueConstraint("account_id", "key"),)

    key: Mapped[str] = mapped_column(String(MAX_LENGTH))
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the route and its body
    status_code: Mapped[int] = mapped_column(Integer)
    body_encrypted: Mapped[str] = mapped_column(Text)


def key_of(request: Request) -> str | None:
    """The request's Idempotency-Key, if it sent one; a malformed one is a 400."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key or len(key) > MAX_LENGTH or not _FORMAT.fullmatch(key):
        raise bad_request(
            t(
                "{header}: must be 1 to {max_length} visible ASCII characters (no spaces), such "
                "as a UUID; got {count} characters",
                header=HEADER,
                max_length=MAX_LENGTH,
                count=len(key),
            ),
            "invalid_idempotency_key",
            HEADER,
        )
    return key


def fingerprint(route: str, body: Any) -> str:
    """What makes two requests "the same": the route and the validated body, canonically."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{route}\n{canonical}".encode()).hexdigest()


async def replay(
    session: AsyncSession, account_id: str, key: str, print_: str, settings: Settings
) -> Response | None:
    """The stored answer for this key (None if the key is new or its 24 hours are over);
    a 409 if the key was used for a different request."""
    record = (
        await session.execute(
            select(IdempotencyRecord).where(
                IdempotencyRecord.account_id == account_id,
                IdempotencyRecord.key == key,
                IdempotencyRecord.created_at > clock.now() - KEEP_FOR,
            )
        )
    ).scalar_one_or_none()
    if record is None:
        return None
    if record.fingerprint != print_:
        raise ApiError(
            409,
            t(
                '{header} "{key}" was already used for a different request; use a new key, or '
                "repeat the original request exactly",
                header=HEADER,
                key=key,
            ),
            "idempotency_conflict",
        )
    return Response(
        decrypt(settings.secret_key, record.body_encrypted).encode(),
        status_code=record.status_code,
        media_type="application/json",
        headers={REPLAYED_HEADER: "true"},
    )


async def remember(
    session: AsyncSession,
    account_id: str,
    key: str,
    print_: str,
    answer: JSONResponse,
    settings: Settings,
) -> Response:
    """Store `answer` under the key in the request's transaction and return it; if a
    concurrent request with the same key committed first, undo this request's work and return
    that request's answer instead (or its 409)."""
    # a record past its 24 hours frees the key (the periodic jobs also purge them)
    await session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.account_id == account_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.created_at <= clock.now() - KEEP_FOR,
        )
    )
    session.add(
        IdempotencyRecord(
            account_id=account_id,
            key=key,
            fingerprint=print_,
            status_code=answer.status_code,
            body_encrypted=encrypt(settings.secret_key, bytes(answer.body).decode()),
        )
    )
    try:
        await session.flush()
    except IntegrityError:
        await rollback(session)  # what this request created goes too
        earlier = await replay(session, account_id, key, print_, settings)
        if earlier is None:  # the other request's record is gone already: let the client retry
            raise ApiError(
                409,
                t(
                    '{header} "{key}" is in use by a concurrent request; retry',
                    header=HEADER,
                    key=key,
                ),
                "conflict",
            ) from None
        return earlier
    return answer


async def purge(session: AsyncSession) -> int:
    """Forget records past their 24 hours (periodic jobs)."""
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at <= clock.now() - KEEP_FOR)
    )
    return int(getattr(result, "rowcount", 0) or 0)
