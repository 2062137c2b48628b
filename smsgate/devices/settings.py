"""Device settings: our API's camelCase fields, and the sections the Android app imports.

The app's `GET /settings` import has sharp edges (a null section is a type error, unknown enum
values abort the import, `gateway.*` would re-point the phone): only this module writes it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from smsgate.kit.schema import Input

SimSelectionMode = Literal["OSDefault", "RoundRobin", "Random"]
LimitPeriod = Literal["Disabled", "PerMinute", "Per30Minutes", "PerHour", "PerDay"]
ProcessingOrder = Literal["LIFO", "FIFO"]

LIMIT_PERIOD_SECONDS = {"PerMinute": 60, "Per30Minutes": 1800, "PerHour": 3600, "PerDay": 86400}

# API field -> (app section, app key)
APP_KEYS: dict[str, tuple[str, str]] = {
    "sendIntervalMin": ("messages", "send_interval_min"),
    "sendIntervalMax": ("messages", "send_interval_max"),
    "limitPeriod": ("messages", "limit_period"),
    "limitValue": ("messages", "limit_value"),
    "simSelectionMode": ("messages", "sim_selection_mode"),
    "processingOrder": ("messages", "processing_order"),
    "messagesLogLifetimeDays": ("messages", "log_lifetime_days"),
    "pingIntervalSeconds": ("ping", "interval_seconds"),
    "logsLifetimeDays": ("logs", "lifetime_days"),
    "webhooksInternetRequired": ("webhooks", "internet_required"),
    "webhooksRetryCount": ("webhooks", "retry_count"),
}

DEFAULTS: dict[str, Any] = {
    "simSelectionMode": "OSDefault",
    "limitPeriod": "Disabled",
    "limitValue": 0,
    "sendIntervalMin": 0,
    "sendIntervalMax": 0,
    "processingOrder": "LIFO",
    "pingIntervalSeconds": 0,
    "messagesLogLifetimeDays": None,
    "logsLifetimeDays": 30,
    "webhooksInternetRequired": True,
    "webhooksRetryCount": 15,
}


class SettingsPatch(Input):
    """PATCH /api/devices/{id}/settings: give only what changes; null restores the default."""

    sim_selection_mode: SimSelectionMode | None = None
    limit_period: LimitPeriod | None = None
    limit_value: int | None = Field(default=None, ge=0, le=100_000)
    send_interval_min: int | None = Field(default=None, ge=0, le=86_400)
    send_interval_max: int | None = Field(default=None, ge=0, le=86_400)
    processing_order: ProcessingOrder | None = None
    ping_interval_seconds: int | None = Field(default=None, ge=0, le=86_400)
    messages_log_lifetime_days: int | None = Field(default=None, ge=1, le=3650)
    logs_lifetime_days: int | None = Field(default=None, ge=1, le=3650)
    webhooks_internet_required: bool | None = None
    webhooks_retry_count: int | None = Field(default=None, ge=1, le=100)

    @model_validator(mode="after")
    def _intervals(self) -> SettingsPatch:
        low, high = self.send_interval_min, self.send_interval_max
        if low is not None and high is not None and high < low:
            raise ValueError("sendIntervalMax must not be below sendIntervalMin")
        return self


def merged(stored: dict[str, Any], patch: SettingsPatch) -> dict[str, Any]:
    """Apply a patch to stored settings: given keys set, explicit nulls removed."""
    result = dict(stored)
    for field, value in patch.model_dump(by_alias=True, exclude_unset=True).items():
        if value is None:
            result.pop(field, None)
        else:
            result[field] = value
    effective = {**DEFAULTS, **result}
    if effective["sendIntervalMax"] < effective["sendIntervalMin"]:
        raise ValueError("sendIntervalMax must not be below sendIntervalMin")
    if effective["limitPeriod"] != "Disabled" and effective["limitValue"] < 1:
        raise ValueError("limitValue must be at least 1 when limitPeriod is not Disabled")
    return result


def effective(stored: dict[str, Any]) -> dict[str, Any]:
    """Every setting with its value, defaults filled in (what the API shows)."""
    return {**DEFAULTS, **{k: v for k, v in stored.items() if k in DEFAULTS}}


def app_sections(stored: dict[str, Any], signing_key: str) -> dict[str, dict[str, Any]]:
    """The object `GET /api/mobile/v1/settings` answers: only keys we manage, never a null section,
    never `gateway.*`."""
    sections: dict[str, dict[str, Any]] = {}
    for field, value in stored.items():
        if field in APP_KEYS and value is not None:
            section, key = APP_KEYS[field]
            sections.setdefault(section, {})[key] = value
    sections.setdefault("webhooks", {})["signing_key"] = signing_key
    return sections


def rate_limit(stored: dict[str, Any]) -> tuple[int, int] | None:
    """(messages, per seconds) the device may be handed, or None when unlimited."""
    values = effective(stored)
    seconds = LIMIT_PERIOD_SECONDS.get(values["limitPeriod"])
    if seconds is None or values["limitValue"] < 1:
        return None
    return int(values["limitValue"]), seconds
