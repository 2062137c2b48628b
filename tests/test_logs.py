"""Logs carry the request, account and device they concern; requests get an id."""

from __future__ import annotations

import json
import logging

from smsgate.kit import logs


async def test_requests_get_an_id_and_keep_a_given_one(client) -> None:
    fresh = await client.get("/health/live")
    assert len(fresh.headers["x-request-id"]) == 16
    kept = await client.get("/health/live", headers={"X-Request-ID": "trace-123"})
    assert kept.headers["x-request-id"] == "trace-123"


async def test_a_crash_answer_carries_the_request_id(client, make_user, monkeypatch) -> None:
    """Starlette answers an unexpected error from outside every middleware; the 500 still
    names the request, whose log lines carry the same id, and tells nothing of the bug."""
    from smsgate.accounts import service

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret detail of a bug")

    user = await make_user()
    monkeypatch.setattr(service, "list_keys", broken)
    for given in ({"X-Request-ID": "crash-1"}, {}):
        failed = await client.get("/api/keys", headers={**user.auth, **given})
        assert failed.status_code == 500
        assert failed.json() == {"error": "internal error", "code": "internal_error"}
        rid = failed.headers["x-request-id"]
        assert rid == given["X-Request-ID"] if given else len(rid) == 16
        assert "secret detail" not in failed.text


def test_json_lines_name_their_request_account_and_device() -> None:
    record = logging.LogRecord("smsgate.test", logging.INFO, __file__, 1, "claimed %d", (3,), None)
    tokens = [logs.request_id.set("r1"), logs.account_id.set("cacc"), logs.device_id.set("cdev")]
    try:
        line = json.loads(logs.JsonFormatter().format(record))
        text = logs.TextFormatter().format(record)
    finally:
        for var, token in zip(
            (logs.request_id, logs.account_id, logs.device_id), tokens, strict=True
        ):
            var.reset(token)
    assert line["message"] == "claimed 3" and line["level"] == "info"
    assert (line["requestId"], line["accountId"], line["deviceId"]) == ("r1", "cacc", "cdev")
    assert line["time"].endswith("Z")
    assert text == "info    smsgate.test: claimed 3 [request=r1 account=cacc device=cdev]"
