"""The device registry, its pairing credentials, and what the server observed of each device."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from smsgate.storage.base import Base, CreatedMixin, IdMixin, TenantMixin, UTCDateTime


class Device(IdMixin, CreatedMixin, TenantMixin, Base):
    __tablename__ = "devices"

    name: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(20), default="android")
    # pending until a phone pairs; then online/offline by presence
    status: Mapped[str] = mapped_column(String(20), default="pending")
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    paired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # the phone's own access token (hash only); rotated on each pairing
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    # one-time pairing credentials (hashes), valid until pairing_expires_at
    pairing_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    pairing_code_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    pairing_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    sim_cards: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    app_version: Mapped[str | None] = mapped_column(String(50), default=None)
    push_token: Mapped[str | None] = mapped_column(String(256), default=None)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # webhooks.signing_key handed to the phone, encrypted with the server key
    signing_key_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    # WhatsApp lines: "cloud" (the Business Cloud API, driven by the server) or "web" (a linked
    # WhatsApp Web session driven by `smsgate whatsapp bridge`); None for Android phones
    provider: Mapped[str | None] = mapped_column(String(10), default=None)
    # a cloud line's Graph API credentials, JSON encrypted with the server key
    credentials_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    # a web line's session as its bridge last reported it: {"state", "qr", "phoneNumber", "at"}
    link: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # the channels a phone declared at registration (our simulator: sms, data, mms); None: what
    # the stock app carries, sms and data (devices.service.PHONE_CHANNELS)
    channels: Mapped[list[str] | None] = mapped_column(JSON, default=None)


class DeviceLog(IdMixin, CreatedMixin, TenantMixin, Base):
    """What the server observed of a device (paired, online, failed recipients) or it posted."""

    __tablename__ = "device_logs"
    __table_args__ = (Index("ix_device_logs_device_id_id", "device_id", "id"),)

    device_id: Mapped[str] = mapped_column(String(25), ForeignKey("devices.id", ondelete="CASCADE"))
    level: Mapped[str] = mapped_column(String(10), default="info")
    event: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class LoginCode(IdMixin, CreatedMixin, TenantMixin, Base):
    """A short-lived, single-use code a phone registers with (`Authorization: Code ...`)."""

    __tablename__ = "login_codes"

    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
