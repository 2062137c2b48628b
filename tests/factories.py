"""Plain factory functions: accounts with their own cookie jar, keys, devices."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from smsgate.agents.phone import DeviceClient
from smsgate.devices.models import Device

BASE_URL = "http://testserver"
PASSWORD = "correct horse battery staple"
METRICS_TOKEN = "metrics-" + secrets.token_hex(8)  # the suite's SMSGATE_METRICS_TOKEN
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}  # what the operator's scraper sends


@dataclass
class User:
    """A signed-up account: its own HTTP client (cookie jar), CSRF token and an API key."""

    client: httpx.AsyncClient
    account_id: str
    email: str
    csrf: str
    key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def auth(self) -> dict[str, str]:
        """Headers for API-key calls."""
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def csrf_header(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{secrets.token_hex(5)}@example.com"


def new_client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL)


async def signup(
    app: FastAPI, *, with_key: bool = True, email: str | None = None, password: str = PASSWORD
) -> User:
    client = new_client(app)
    email = email or unique_email()
    resp = await client.post("/api/auth/signup", json={"email": email, "password": password})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    user = User(client, body["account"]["id"], email, body["csrfToken"])
    # test accounts also send to US numbers (the default is the account's own country only)
    allowed = await client.patch(
        "/api/account/settings", json={"allowedCountries": ["MX", "US"]}, headers=user.csrf_header
    )
    assert allowed.status_code == 200, allowed.text
    if with_key:
        resp = await client.post("/api/keys", json={"name": "test"}, headers=user.csrf_header)
        assert resp.status_code == 201, resp.text
        user.key = resp.json()["key"]
    return user


async def add_device(
    app: FastAPI, account_id: str, name: str = "phone", kind: str = "android"
) -> str:
    """A device row that no phone ever paired (for tests about references to devices); `kind`
    "whatsapp" makes it a web WhatsApp line."""
    provider = "web" if kind == "whatsapp" else None
    async with app.state.db.transaction() as session:
        device = Device(
            account_id=account_id,
            name=name,
            type=kind,
            provider=provider,
            status="pending",
            settings={},
        )
        session.add(device)
        await session.flush()
        return device.id


async def pair_phone(
    user: User, http: httpx.AsyncClient | None = None, base: str = BASE_URL, name: str = "phone"
) -> DeviceClient:
    """Create an Android device through the API and register a DeviceClient with its token."""
    created = await user.client.post("/api/devices/android", json={"name": name}, headers=user.auth)
    assert created.status_code == 201, created.text
    phone = DeviceClient(base + "/api/mobile/v1", http=http or user.client)
    await phone.register(pairing_token=created.json()["pairing"]["token"], name="samsung/a52")
    return phone


async def send(user: User, **body: Any) -> httpx.Response:
    payload: dict[str, Any] = {"phoneNumbers": ["+5215555555555"], "message": "Hola mundo"}
    payload.update(body)
    return await user.client.post("/api/v1/send", json=payload, headers=user.auth)
