"""DeviceClient: the Android app's side of the mobile protocol, call for call and byte for byte.

Used by the simulator, the tests and the benchmarks; because it speaks exactly the app's wire
format (Gson-style absent fields, phone-local times with an offset, arrays for state reports),
it doubles as a conformance check of the server.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

USER_AGENT = "me.capcom.smsgateway/1.60.0-sim"


def phone_time(value: datetime) -> str:
    """The phone's local time with milliseconds and its UTC offset, as the app writes dates."""
    local = value.astimezone()
    text = local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}"
    offset = local.strftime("%z")
    return text + ("Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}")


@dataclass
class Registration:
    id: str
    token: str
    login: str
    password: str | None = None


class MobileError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


class DeviceClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.device_id: str | None = None
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> DeviceClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def _headers(self, authorization: str | None = None) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT}
        auth = authorization or (f"Bearer {self.token}" if self.token else None)
        if auth:
            headers["Authorization"] = auth
        return headers

    async def _call(
        self, method: str, path: str, body: Any = None, authorization: str | None = None
    ) -> httpx.Response:
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = self._headers(authorization)
        if content is not None:
            headers["Content-Type"] = "application/json; charset=UTF-8"
        response = await self.http.request(
            method, self.base_url + path, content=content, headers=headers
        )
        if response.status_code >= 300:
            raise MobileError(response.status_code, response.text)
        return response

    # --- registration -------------------------------------------------------------------------

    async def register(
        self,
        *,
        pairing_token: str | None = None,
        code: str | None = None,
        login: str | None = None,
        password: str | None = None,
        name: str = "simulated/phone",
        sim_cards: Sequence[dict[str, Any]] | None = None,
        push_token: str | None = None,
        channels: Sequence[str] | None = None,
    ) -> Registration:
        """Register as the stock app does; `channels` (our extension) declares what this
        phone carries beyond the stock app's SMS and data (the simulator: MMS too)."""
        if pairing_token:
            authorization = f"Bearer {pairing_token}"
        elif code:
            authorization = f"Code {code}"
        elif login is not None and password is not None:
            pair = base64.b64encode(f"{login}:{password}".encode()).decode()
            authorization = f"Basic {pair}"
        else:
            raise ValueError("give a pairing token, a code, or a login and password")
        body: dict[str, Any] = {"name": name}
        if push_token is not None:
            body["pushToken"] = push_token
        if channels is not None:
            body["channels"] = list(channels)
        body["simCards"] = list(
            sim_cards
            or [
                {
                    "slotIndex": 0,
                    "simNumber": 1,
                    "phoneNumber": "********4567",
                    "carrierName": "****cel",
                }
            ]
        )
        data = (await self._call("POST", "/device", body, authorization)).json()
        self.token, self.device_id = data["token"], data["id"]
        return Registration(data["id"], data["token"], data["login"], data.get("password"))

    async def update(
        self, *, push_token: str | None = None, sim_cards: Sequence[dict[str, Any]] | None = None
    ) -> None:
        body: dict[str, Any] = {"id": self.device_id}
        if push_token is not None:
            body["pushToken"] = push_token
        if sim_cards is not None:
            body["simCards"] = list(sim_cards)
        await self._call("PATCH", "/device", body)

    async def external_ip(self) -> dict[str, Any]:
        data: dict[str, Any] = (await self._call("GET", "/device")).json()
        return data

    # --- messages -----------------------------------------------------------------------------

    async def pull(self, order: str = "lifo") -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = (await self._call("GET", f"/message?order={order}")).json()
        return data

    async def report(
        self,
        message_id: str,
        state: str,
        recipients: Sequence[tuple[str, str, str | None]],
        states: dict[str, datetime] | None = None,
    ) -> None:
        """One state report, as the app sends it: an array with exactly one element."""
        item: dict[str, Any] = {
            "id": message_id,
            "state": state,
            "recipients": [
                {"phoneNumber": number, "state": s, **({"error": e} if e else {})}
                for number, s, e in recipients
            ],
            "states": {name: phone_time(at) for name, at in (states or {}).items()},
        }
        await self._call("PATCH", "/message", [item])

    async def report_entries(
        self, message_id: str, entries: Sequence[dict[str, Any]], state: str | None = None
    ) -> None:
        """A state report with recipients given as the app's objects (our agents add
        `providerMessageId`); with no recipients and a state, it acknowledges the message."""
        item: dict[str, Any] = {"id": message_id, "recipients": list(entries)}
        if state is not None:
            item["state"] = state
        await self._call("PATCH", "/message", [item])

    # --- wake-ups -----------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        """Yield (event name, data) from GET /events; comments (keepalives) are skipped.

        The first item is ("connected", None) once the stream is open: the app polls then.
        """
        async with self.http.stream(
            "GET", self.base_url + "/events", headers=self._headers(), timeout=None
        ) as response:
            if response.status_code != 200:
                raise MobileError(response.status_code, (await response.aread()).decode())
            kind = response.headers.get("content-type", "")
            if not kind.startswith("text/event-stream"):
                raise MobileError(response.status_code, f"not an event stream: {kind}")
            yield "connected", None
            name, data = "", ""
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    continue
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data = line[5:].strip()
                elif line == "":
                    if name or data:
                        yield name or "MessageEnqueued", json.loads(data) if data else None
                    name, data = "", ""

    # --- settings, webhooks, account ----------------------------------------------------------

    async def settings(self) -> dict[str, Any]:
        data: dict[str, Any] = (await self._call("GET", "/settings")).json()
        return data

    async def webhooks(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = (await self._call("GET", "/webhooks")).json()
        return data

    async def login_code(self, login: str, password: str) -> dict[str, Any]:
        pair = base64.b64encode(f"{login}:{password}".encode()).decode()
        data: dict[str, Any] = (await self._call("GET", "/user/code", None, f"Basic {pair}")).json()
        return data

    async def change_password(self, current: str, new: str) -> None:
        await self._call(
            "PATCH", "/user/password", {"currentPassword": current, "newPassword": new}
        )

    # --- extensions for our own agents --------------------------------------------------------

    async def inbox(self, messages: Sequence[dict[str, Any]]) -> list[str]:
        data = (await self._call("POST", "/inbox", {"messages": list(messages)})).json()
        return list(data["ids"])

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """Any other call of the mobile API (the WhatsApp bridge's extensions); its JSON."""
        response = await self._call(method, path, body)
        return response.json() if response.content else None

    async def logs(self, lines: Sequence[dict[str, Any]]) -> int:
        return int((await self._call("POST", "/logs", list(lines))).json()["accepted"])
