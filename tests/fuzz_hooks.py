"""Schemathesis hooks for tests/test_api_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

Generated URLs name hosts anywhere; saving a webhook resolves its host, which would send DNS
queries off this machine. Every `url` in a request body is pointed at a closed port on loopback
before the request goes out (the server under test accepts loopback targets and delivers
nothing: its worker is off), so the fuzzer exercises the same code without leaving 127.0.0.1.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import schemathesis

LOOPBACK = "127.0.0.1:9"  # the discard port: nothing listens there


def _loopback(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _pinned(v) if k == "url" else _loopback(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_loopback(v) for v in value]
    return value


def _pinned(value: Any) -> Any:
    if not isinstance(value, str) or "://" not in value:
        return _loopback(value)
    try:
        parts = urlsplit(value)
    except ValueError:
        return "http://" + LOOPBACK + "/"
    return urlunsplit((parts.scheme, LOOPBACK, parts.path, parts.query, parts.fragment))


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    case.body = _loopback(case.body)
