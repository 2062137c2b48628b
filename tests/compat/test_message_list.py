"""The third-party API's message list reads a page in a fixed number of statements, whatever
its size (it once made two queries a message)."""

from __future__ import annotations

import httpx
from sqlalchemy import event

from tests.factories import PASSWORD, send


async def _statements(app, call) -> int:
    counted = 0

    def count(*_: object) -> None:
        nonlocal counted
        counted += 1

    engine = app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        await call()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return counted


async def test_a_page_of_messages_costs_the_same_few_statements(app, make_user) -> None:
    user = await make_user()
    basic = httpx.BasicAuth(user.email, PASSWORD)
    pages: dict[int, list] = {}

    async def listing(size: int) -> None:
        answer = await user.client.get(
            "/api/3rdparty/v1/messages", params={"limit": size}, auth=basic
        )
        assert answer.status_code == 200, answer.text
        pages[size] = answer.json()

    for n in range(12):
        sent = await send(user, phoneNumbers=[f"+52155123400{n:02d}"], message=f"m{n}")
        assert sent.status_code == 202, sent.text
    await listing(2)  # the credential is cached from here on
    few = await _statements(app, lambda: listing(2))
    many = await _statements(app, lambda: listing(12))
    assert len(pages[2]) == 2 and len(pages[12]) == 12
    assert many == few, (few, many)
    assert all(p["state"] == "Pending" and p["recipients"] for p in pages[12])
