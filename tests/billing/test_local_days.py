"""An account's days and months are those of its time zone: a Mexico City account's day starts
at 06:00 UTC, its usage is bucketed by its own dates and its period starts at its midnight."""

from __future__ import annotations

from datetime import UTC, datetime

from smsgate.billing import plans, usage
from smsgate.kit import clock
from tests.factories import send

MEXICO = "America/Mexico_City"  # UTC-6 all year since 2022


def test_the_period_and_the_day_are_the_account_s() -> None:
    created = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)  # the 14th at 21:00 in Mexico City
    now = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)  # 28 February, 21:00 in Mexico City
    start, end, day = usage.buckets(created, now, MEXICO)
    assert (start, day) == ("2026-02-14", "2026-02-28")
    assert end == datetime(2026, 3, 14, 6, 0, tzinfo=UTC)  # its midnight, as a UTC instant
    # the same instants in UTC: another day, another period
    assert usage.buckets(created, now, "UTC") == (
        "2026-02-15",
        datetime(2026, 3, 15, tzinfo=UTC),
        "2026-03-01",
    )
    begins, ends = plans.period(created, now, usage._zone(MEXICO))
    assert begins.isoformat() == "2026-02-14T00:00:00-06:00" and ends.day == 14


async def test_a_late_evening_send_counts_on_the_account_s_day(make_user) -> None:
    user = await make_user()  # a Mexican account: America/Mexico_City
    local_today = clock.now().astimezone(usage._zone(MEXICO)).date()
    # 23:30 in Mexico City is already tomorrow in UTC
    evening = datetime(
        local_today.year, local_today.month, local_today.day, 23, 30, tzinfo=usage._zone(MEXICO)
    )
    clock.advance(evening.astimezone(UTC) - clock.now())
    assert clock.now().date() != local_today
    answer = await send(user)
    assert answer.status_code == 202, answer.text
    day = local_today.isoformat()
    used = await user.client.get(
        "/api/billing/usage", params={"from": day, "to": day}, headers=user.auth
    )
    assert used.status_code == 200, used.text
    assert used.json()["data"][0]["messages"] == 1
    billing = (await user.client.get("/api/billing", headers=user.auth)).json()
    assert billing["period"]["start"].endswith("T06:00:00.000Z")  # its midnight
