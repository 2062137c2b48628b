"""The line loop's pacing: one message per 6 s to the same person, priority >= 100 exempt
(cloud), a pause between any two messages of a web line."""

from __future__ import annotations

from smsgate.whatsapp.lines import Outcome, Outgoing, Pacer, send_with_retries


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_same_recipient_waits_six_seconds_unless_expedited() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    for to in ("+5215500000001", "+5215500000002", "+5215500000001"):
        await pacer.wait(to, 0)
        pacer.sent(to)
    assert clock.slept == [6.0]  # only the repeat to the first person waited
    assert pacer.wait_for("+5215500000001", 100) == 0.0
    clock.now += 2
    assert pacer.wait_for("+5215500000001", 0) == 4.0


async def test_a_web_line_paces_every_message_and_ignores_priority() -> None:
    clock = Clock()
    pacer = Pacer(per_recipient=6, per_line=2, expedite=False, clock=clock, sleep=clock.sleep)
    for to in ("+5215500000001", "+5215500000002", "+5215500000003"):
        await pacer.wait(to, 127)
        pacer.sent(to)
    assert clock.slept == [2.0, 2.0]


async def test_temporary_refusals_are_retried_then_reported() -> None:
    class Busy:
        calls = 0

        async def send(self, message: Outgoing) -> Outcome:
            self.calls += 1
            return Outcome(error="rate limited", retry_after=100.0)

    clock = Clock()
    sender = Busy()
    outcome = await send_with_retries(sender, Outgoing("m", "+5215500000001", "x"), clock.sleep)
    assert outcome == Outcome(error="rate limited")
    assert sender.calls == 4 and clock.slept == [30.0, 30.0, 30.0]  # waits are capped
