"""Outbound HTTP to URLs that customers give us, without letting them reach our own network.

A target is refused when its host is, or resolves to, an address that is not public: loopback,
private, link-local (cloud metadata), CGNAT, multicast, reserved, unspecified, or an IPv6 address
embedding one of those (IPv4-mapped, NAT64, 6to4). Checked when the URL is saved and again on the
address actually connected to (the connection goes to the address that was checked, so a name
that re-resolves elsewhere — DNS rebinding — does not help). Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from smsgate.kit.i18n import t

EXCERPT_BYTES = 2048
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIXTOFOUR = ipaddress.ip_network("2002::/16")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeTarget(ValueError):
    pass


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded: IPAddress | None = address.ipv4_mapped
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and address in _SIXTOFOUR:
            embedded = ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
        if embedded is not None and not is_public(embedded):
            return False
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return False
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def check_url_shape(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or UnsafeTarget saying what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget(t("must be an http:// or https:// URL with a host"))
    if parts.username or parts.password:
        raise UnsafeTarget(t("must not carry a user name or password"))
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeTarget(t("has an invalid port")) from exc
    return parts.scheme, parts.hostname, port


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        literal = ipaddress.ip_address(host)
        return [literal]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnsafeTarget(t("the host {host} does not resolve", host=host)) from exc
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address not in found:
            found.append(address)
    return found


async def safe_addresses(
    url: str, allow_private: bool, *, must_resolve: bool = True
) -> tuple[str, str, int, list[IPAddress]]:
    """Resolve a URL's host and refuse it unless every address is public (or allowed).

    With must_resolve False (saving a URL), a host that does not resolve now is accepted: DNS
    may come later, and every delivery checks again."""
    scheme, host, port = check_url_shape(url)
    try:
        addresses = await resolve(host, port)
    except UnsafeTarget:
        if must_resolve:
            raise
        addresses = []
    if not addresses and must_resolve:
        raise UnsafeTarget(t("the host {host} does not resolve", host=host))
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise UnsafeTarget(
                    t(
                        "points to {address}, which is not a public address (loopback, private, "
                        "link-local or reserved targets are refused)",
                        address=address,
                    )
                )
    return scheme, host, port, addresses


@dataclass(frozen=True)
class Outcome:
    status: int | None
    latency_ms: int
    excerpt: str | None
    error: str | None
    retry_after: float | None


async def _pinned(url: str, allow_private: bool) -> tuple[str, str, dict[str, Any]]:
    """The URL with its host replaced by the address that was checked (so a second lookup
    cannot move the request elsewhere), the Host header, and the TLS name to check."""
    scheme, host, port, addresses = await safe_addresses(url, allow_private)
    parts = urlsplit(url)
    address = addresses[0]
    literal = f"[{address}]" if address.version == 6 else str(address)
    pinned = urlunsplit((scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
    default_port = 443 if scheme == "https" else 80
    host_header = host if port == default_port else f"{host}:{port}"
    return pinned, host_header, ({"sni_hostname": host} if scheme == "https" else {})


class FetchFailed(Exception):
    """A file could not be fetched: refused target, error status, too big, timed out."""


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    allow_private: bool,
    time_limit: float,
    max_bytes: int,
    headers: dict[str, str] | None = None,
) -> tuple[bytes, str]:
    """GET a file from the address that was checked, never following redirects, reading at
    most `max_bytes`: its bytes and content type."""
    try:
        pinned, host_header, extensions = await _pinned(url, allow_private)
        async with asyncio.timeout(time_limit):
            async with client.stream(
                "GET",
                pinned,
                headers={**(headers or {}), "Host": host_header, "User-Agent": "SMSGate-Media/1"},
                extensions=extensions,
                timeout=time_limit,
                follow_redirects=False,
            ) as response:
                if response.status_code != 200:
                    raise FetchFailed(
                        t("answered HTTP {status_code}", status_code=response.status_code)
                    )
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise FetchFailed(
                            t("is larger than {max_bytes} bytes", max_bytes=max_bytes)
                        )
                kind = response.headers.get("content-type", "application/octet-stream")
                return bytes(data), kind.split(";", 1)[0].strip() or "application/octet-stream"
    except UnsafeTarget as exc:
        raise FetchFailed(str(exc)) from exc
    except TimeoutError as exc:
        raise FetchFailed(
            t("did not arrive within {time_limit:g} s", time_limit=time_limit)
        ) from exc
    except httpx.HTTPError as exc:
        raise FetchFailed(t("could not be fetched ({name})", name=type(exc).__name__)) from exc


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


async def post(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow_private: bool,
    time_limit: float,
) -> Outcome:
    """POST to the address that was checked; never follow redirects; keep 2 KB of the answer."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        pinned, host_header, extensions = await _pinned(url, allow_private)
    except UnsafeTarget as exc:
        return Outcome(None, elapsed(), None, f"refused target: {exc}", None)
    for attempt in (1, 2):
        answered = False
        try:
            async with client.stream(
                "POST",
                pinned,
                content=body,
                headers={**headers, "Host": host_header},
                extensions=extensions,
                timeout=time_limit,
                follow_redirects=False,
            ) as response:
                answered = True
                excerpt = b""
                async for chunk in response.aiter_bytes():
                    excerpt += chunk
                    if len(excerpt) >= EXCERPT_BYTES:
                        break
                text = excerpt[:EXCERPT_BYTES].decode("utf-8", "replace")
                return Outcome(
                    response.status_code,
                    elapsed(),
                    text,
                    None,
                    _retry_after(response.headers.get("retry-after")),
                )
        except httpx.TimeoutException:
            return Outcome(None, elapsed(), None, f"timed out after {time_limit:g} s", None)
        except _CLOSED_UNDER_US as exc:
            if attempt == 1 and not answered:
                continue  # most likely a kept-alive connection the receiver was closing
            return _failed(exc, elapsed())
        except httpx.HTTPError as exc:
            return _failed(exc, elapsed())
    raise AssertionError("unreachable: the second attempt returns")


# A receiver closes a kept-alive connection when it has been idle for its own timeout (Node and
# uvicorn: 5 s, gunicorn: 2 s); a request sent at that moment meets the close before any answer
# and was most likely never read. It is sent once more at once, on another connection, rather than
# counted as a failed attempt and retried minutes later (receivers dedupe by the event's id).
_CLOSED_UNDER_US = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def _failed(exc: Exception, elapsed: int) -> Outcome:
    return Outcome(None, elapsed, None, f"{type(exc).__name__}: {exc}"[:500], None)
