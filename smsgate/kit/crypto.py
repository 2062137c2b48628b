"""Token generation, hashing and checksums."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import zlib

from cryptography.fernet import Fernet

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CHECKSUM_LENGTH = 6


def token_hash(token: str) -> str:
    """Hash for high-entropy secrets (keys, tokens): a fast hash is enough, no salt needed."""
    return hashlib.sha256(token.encode()).hexdigest()


def random_base62(length: int) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(length))


def base62(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        chars.append(_BASE62[rem])
    return "".join(reversed(chars))


def checksum(body: str) -> str:
    return base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


def with_checksum(prefix: str, body_length: int) -> str:
    """prefix + random body + checksum of the body, so typos are caught offline."""
    body = random_base62(body_length)
    return prefix + body + checksum(body)


def checksum_ok(token: str, prefix: str, body_length: int) -> bool:
    if len(token) != len(prefix) + body_length + CHECKSUM_LENGTH or not token.startswith(prefix):
        return False
    body = token[len(prefix) : len(prefix) + body_length]
    given = token[len(prefix) + body_length :]
    return hmac.compare_digest(checksum(body), given)


def opaque_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def derive_key(secret: str, purpose: str) -> bytes:
    """A separate key per purpose, so one leaked derived key does not sign another's tokens."""
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()


def equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive_key(secret, "stored-secrets/v1")))


def encrypt(secret: str, plaintext: str) -> str:
    """Encrypt a secret we must show again (webhook and device signing keys) with the server key."""
    return _fernet(secret).encrypt(plaintext.encode()).decode()


def decrypt(secret: str, token: str) -> str:
    return _fernet(secret).decrypt(token.encode()).decode()
