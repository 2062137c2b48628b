"""The group-commit writer: one transaction for many sends, and one bad send fails alone."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import IntegrityError

from smsgate.accounts.service import Principal
from smsgate.messages.schemas import SendRequest
from smsgate.messages.service import prepare_message
from smsgate.messages.writer import SendWriter


def _request(**fields) -> SendRequest:
    body = {"phoneNumbers": ["+5215555555555"], "message": "Hola", **fields}
    return SendRequest.model_validate(body)


async def test_a_send_with_a_vanished_device_fails_alone(app, make_user) -> None:
    user = await make_user()
    principal = Principal(user.account_id, frozenset(), "key", "k", "MX")
    writer = SendWriter(app.state.db)
    try:
        good = [prepare_message(principal.account_id, "MX", _request()) for _ in range(5)]
        bad = prepare_message(
            principal.account_id, "MX", _request(deviceId="cgonegonegonegonegonegone")
        )
        results = await asyncio.gather(
            *(writer.store(p) for p in [*good[:2], bad, *good[2:]]), return_exceptions=True
        )
    finally:
        await writer.close()
    assert isinstance(results[2], IntegrityError)
    stored = [r for i, r in enumerate(results) if i != 2]
    assert all(not isinstance(r, BaseException) and r.created for r in stored)
    listed = (await user.client.get("/api/v1/messages", headers=user.auth)).json()["data"]
    assert {m["id"] for m in listed} == {p.message["id"] for p in good}


async def test_concurrent_sends_share_commits(app, make_user) -> None:
    """200 concurrent sends through one writer all land, each exactly once."""
    user = await make_user()
    writer = SendWriter(app.state.db)
    try:
        prepared = [
            prepare_message(user.account_id, "MX", _request(message=f"m{i}")) for i in range(200)
        ]
        results = await asyncio.gather(*(writer.store(p) for p in prepared))
    finally:
        await writer.close()
    assert all(r.created for r in results)
    seen: list[str] = []
    cursor = None
    while True:
        url = "/api/v1/messages?limit=100" + (f"&cursor={cursor}" if cursor else "")
        page = (await user.client.get(url, headers=user.auth)).json()
        seen += [m["id"] for m in page["data"]]
        if not (cursor := page["nextCursor"]):
            break
    assert sorted(seen) == sorted(p.message["id"] for p in prepared)


@pytest.mark.parametrize("copies", [2, 7])
async def test_duplicates_inside_one_batch_make_one_message(app, make_user, copies) -> None:
    user = await make_user()
    writer = SendWriter(app.state.db)
    try:
        prepared = [
            prepare_message(user.account_id, "MX", _request(externalId="same"))
            for _ in range(copies)
        ]
        results = await asyncio.gather(*(writer.store(p) for p in prepared))
    finally:
        await writer.close()
    assert sum(r.created for r in results) == 1
    assert len({r.row["id"] for r in results}) == 1
