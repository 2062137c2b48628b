"""Settings, read from SMSGATE_* environment variables; nothing else reads os.environ."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name)
# seconds before each retry of a webhook delivery: 16 retries over about five days
WEBHOOK_RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, *(36000,) * 11)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMSGATE_", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str = ""
    database_schema: str = ""
    database_pool_size: int = Field(default=10, ge=1, le=200)
    secret_key: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # longer than clients' and load balancers' own idle timeouts (httpx and Node 5 s, AWS ALB
    # 60 s), so an idle connection is always closed by the client, never under its next request
    http_keepalive_seconds: int = Field(default=75, ge=1, le=3600)
    public_url: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    # addresses (or networks) of reverse proxies whose X-Forwarded-For/-Proto are believed
    trusted_proxies: str = ""
    default_region: str = "MX"
    log_level: str = "info"
    log_format: str = Field(default="text", pattern="^(text|json)$")
    signup_enabled: bool = True
    # password-reset links by email: smtp://[user:password@]host[:port] (STARTTLS when the
    # server offers it; ?starttls=required refuses one that does not), or smtps:// (TLS from the
    # start); empty: no email, an operator resets with `smsgate accounts reset-password`
    smtp_url: str = ""
    mail_from: str = ""
    # a self-hosted server limits nobody by default; a hosted service sets "free"
    default_plan: str = "unlimited"
    plans_file: str = ""

    access_token_ttl_seconds: int = Field(default=15 * 60, ge=60)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=3600)
    session_ttl_seconds: int = Field(default=14 * 24 * 3600, ge=300)
    cookie_secure: bool | None = None

    mms_attachment_max_bytes: int = Field(default=5 * 1024 * 1024, ge=0)
    # what one request may make the server hold (ops/limits.py)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_attachment_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    retention_message_days: int = Field(default=0, ge=0)
    retention_delivery_days: int = Field(default=0, ge=0)
    retention_log_days: int = Field(default=0, ge=0)
    opt_out_keywords: str = "STOP,BAJA,ALTO,CANCELAR,UNSUBSCRIBE"
    opt_in_keywords: str = "START,ALTA"
    webhooks_allow_private: bool = False
    # GET /metrics answers only `Authorization: Bearer <this>`; empty: /metrics is off (404)
    metrics_token: str = ""
    # seconds before each retry of a webhook delivery, in order; then it is failed
    webhook_retry_schedule: str = ",".join(str(s) for s in WEBHOOK_RETRY_SCHEDULE)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    webhook_lease_seconds: float = Field(default=60.0, gt=0)
    mobile_open_registration: bool = False
    mobile_registration_token: str = ""
    pairing_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    device_offline_after_seconds: int = Field(default=120, ge=10)
    device_stalled_after_seconds: int = Field(default=24 * 3600, ge=0)  # 0: never
    sse_keepalive_seconds: float = Field(default=15.0, gt=0)
    worker_interval_seconds: float = Field(default=5.0, gt=0)
    embedded_worker: bool = True
    whatsapp_graph_url: str = "https://graph.facebook.com/v21.0"
    whatsapp_recipient_interval_seconds: float = Field(default=6.0, ge=0, le=3600)
    whatsapp_stalled_after_seconds: int = Field(default=900, ge=60)

    login_max_failures: int = Field(default=5, ge=1)
    # requests with an API key or access token that does not exist (or no longer works), from
    # one address, in any minute; past it, 429 instead of 401
    bad_credentials_per_minute: int = Field(default=60, ge=1)
    login_lockout_seconds: int = Field(default=60, ge=1)

    @field_validator("default_region")
    @classmethod
    def _upper_region(cls, value: str) -> str:
        value = value.strip().upper()
        if len(value) != 2 or not value.isalpha():
            raise ValueError("SMSGATE_DEFAULT_REGION must be a two-letter country code such as MX")
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not parts or not all(part.isdigit() and int(part) > 0 for part in parts):
            raise ValueError(
                "SMSGATE_WEBHOOK_RETRY_SCHEDULE must be whole seconds above 0, comma-separated"
            )
        return ",".join(parts)

    @property
    def webhook_retries(self) -> tuple[int, ...]:
        """The retry schedule in seconds (webhook_retry_schedule)."""
        return tuple(int(part) for part in self.webhook_retry_schedule.split(","))

    def resolved(self) -> Settings:
        """Fill the settings whose defaults depend on others or on the data folder."""
        data_dir = self.data_dir
        updates: dict[str, object] = {}
        if not self.database_url:
            updates["database_url"] = f"sqlite+aiosqlite:///{_private_database(data_dir)}"
        if not self.secret_key:
            updates["secret_key"] = _load_or_create_secret(data_dir)
        if not self.public_url:
            scheme = "https" if self.ssl_certfile else "http"
            updates["public_url"] = f"{scheme}://{self.host}:{self.port}"
        else:
            updates["public_url"] = self.public_url.rstrip("/")
        if self.cookie_secure is None:
            public_url = str(updates.get("public_url", self.public_url))
            updates["cookie_secure"] = public_url.startswith("https://")
        return self.model_copy(update=updates)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _private_database(data_dir: Path) -> Path:
    """The embedded database's file, readable by this user only: a new data folder is 0700 and
    a new database file 0600 (SQLite gives its -wal and -shm files the database's mode)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = (data_dir / "smsgate.db").resolve()
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    return path


def _load_or_create_secret(data_dir: Path) -> str:
    """Keep a generated key in the data folder so sessions and tokens survive restarts."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / SECRET_KEY_FILE
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    value = secrets.token_urlsafe(48)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings().resolved()
