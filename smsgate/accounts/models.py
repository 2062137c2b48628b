"""Tables of accounts and their credentials."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from smsgate.storage.base import Base, CreatedMixin, IdMixin, TenantMixin, UTCDateTime


class Account(IdMixin, CreatedMixin, Base):
    """The tenant: everything else belongs to one account. Also its (single) login."""

    __tablename__ = "accounts"

    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    plan: Mapped[str] = mapped_column(String(50), default="free")
    region: Mapped[str] = mapped_column(String(2), default="MX")
    # Bumped to refuse every access token issued before (password change, suspension).
    token_epoch: Mapped[int] = mapped_column(Integer, default=0)
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # account-wide preferences (e.g. optOutBypassExpedited)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class WebSession(IdMixin, CreatedMixin, TenantMixin, Base):
    """A browser login: the cookie holds a random token, the table only its hash."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class ApiKey(IdMixin, CreatedMixin, TenantMixin, Base):
    __tablename__ = "api_keys"

    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(Text)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class RefreshToken(IdMixin, CreatedMixin, TenantMixin, Base):
    """One link of a rotation chain; the chain (family) is revoked whole on reuse."""

    __tablename__ = "refresh_tokens"

    family_id: Mapped[str] = mapped_column(String(25), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(Text)
    access_ttl_seconds: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class RevokedToken(CreatedMixin, TenantMixin, Base):
    """Access-token ids (jti) and whole refresh families refused before they expire."""

    __tablename__ = "revoked_tokens"

    token_id: Mapped[str] = mapped_column(String(25), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LoginThrottle(Base):
    """Failed logins per email and client address (global: it exists before any login)."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
