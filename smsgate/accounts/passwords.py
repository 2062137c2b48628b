"""Argon2 password hashing, off the event loop, and the minimum password rules."""

from __future__ import annotations

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from smsgate.errors import bad_request
from smsgate.kit.i18n import t

MIN_LENGTH = 10
MAX_LENGTH = 256

_hasher = PasswordHasher()
# Verified when the email is unknown, so both failures take the same time.
_DUMMY_HASH = _hasher.hash("smsgate-dummy-password-for-timing")


def check_rules(password: str, email: str, field: str = "password") -> None:
    if len(password) < MIN_LENGTH:
        raise bad_request(
            t(
                "{field}: must be at least {min_length} characters long",
                field=field,
                min_length=MIN_LENGTH,
            ),
            "weak_password",
            field,
        )
    if len(password) > MAX_LENGTH:
        raise bad_request(
            t(
                "{field}: must be at most {max_length} characters long",
                field=field,
                max_length=MAX_LENGTH,
            ),
            "weak_password",
            field,
        )
    if len(set(password)) < 4:
        raise bad_request(
            t("{field}: use at least 4 different characters", field=field), "weak_password", field
        )
    if password.strip().lower() == email.strip().lower():
        raise bad_request(
            t("{field}: must not be your email address", field=field), "weak_password", field
        )


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(_verify)
