"""The chaos suite, small: a real server killed, its database's connections cut, a receiver
gone; nothing accepted may be lost or doubled, nothing may answer 500. `make chaos` runs the
same scenarios bigger and prints their figures (docs/operations.md records them)."""

from __future__ import annotations

import pytest

from tests.chaos import harness
from tests.conftest import TEST_DATABASE_URL

# a retry a second or two apart, for long enough to outlast the outage
SHORT_RETRIES = {"SMSGATE_WEBHOOK_RETRY_SCHEDULE": ",".join(["1"] + ["2"] * 100)}


async def test_every_accepted_send_exists_once_after_crashes(tmp_path) -> None:
    async with harness.server(tmp_path, TEST_DATABASE_URL) as running:
        figures = await harness.sends_through_crashes(running, sends=120, kills=2)
    print(figures)
    assert figures["accepted"] == figures["sends"] and not figures["refused"], figures
    assert figures["lost"] == figures["duplicated"] == figures["answered_another_id"] == 0
    assert figures["orphan_processes"] == 0, "helpers outlived their killed server"


async def test_every_message_is_sent_by_one_phone_through_crashes(tmp_path) -> None:
    async with harness.server(tmp_path, TEST_DATABASE_URL) as running:
        figures = await harness.phones_through_crashes(running, phones=3, messages=60, kills=2)
    print(figures)
    assert figures["taken"] == figures["messages"]
    assert figures["sent_by_two_phones"] == 0, figures
    assert figures["states"] == {"sent": figures["messages"]}, figures
    assert figures["orphan_processes"] == 0


async def test_a_receiver_outage_past_the_old_threshold_loses_nothing(tmp_path) -> None:
    async with harness.server(tmp_path, TEST_DATABASE_URL, SHORT_RETRIES) as running:
        figures = await harness.receiver_outage(running, events=60, outage_seconds=15)
    print(figures)
    assert figures["failed_attempts_during_outage"] > harness.OLD_DISABLE_THRESHOLD, figures
    assert figures["still_enabled"] is True
    assert figures["delivered"] == figures["healthy_delivered"] == figures["events"], figures
    assert figures["duplicated"] == 0 and figures["lost"] == 0


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="PostgreSQL's connections (SQLite has none)")
async def test_terminated_postgresql_connections_never_answer_500(tmp_path) -> None:
    async with harness.server(tmp_path, TEST_DATABASE_URL) as running:
        figures = await harness.connections_terminated(running, TEST_DATABASE_URL, seconds=10)
    print(figures)
    assert figures["connections_terminated"] > 0
    assert figures["errors_500"] == 0, figures
    assert figures["answers"].get("202", 0) > 0 and figures["answers"].get("200", 0) > 0
