"""The small shared toolbox: ids, times, phone numbers, segments, key checksums."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime

import pytest

from smsgate.kit import clock, crypto, phones, segments
from smsgate.kit.ids import is_id, new_id


def test_ids_are_25_chars_time_ordered_and_unique() -> None:
    # a fresh process's first ids too (none of its random digits read yet)
    first = subprocess.run(
        [sys.executable, "-c", "from smsgate.kit.ids import new_id; print(new_id(), new_id())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    ids = [new_id() for _ in range(5000)]
    assert all(len(i) == 25 and i[0] == "c" and is_id(i) for i in first + ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # the 12 random digits are spread evenly over the 36: 240,000 digits, 6,667 each give or
    # take 80 (one standard deviation); a digit drawn as byte % 36 would give 0-3 ~7,500
    counts = Counter(ch for _ in range(20_000) for ch in new_id()[13:])
    assert len(counts) == 36 and all(abs(n - 240_000 / 36) < 480 for n in counts.values())


def test_iso_has_three_fraction_digits_and_z() -> None:
    value = datetime(2026, 4, 24, 10, 0, 0, 123456, tzinfo=UTC)
    assert clock.iso(value) == "2026-04-24T10:00:00.123Z"
    assert clock.iso(datetime(2026, 4, 24, 10, 0)) == "2026-04-24T10:00:00.000Z"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+5215555555555", "+5215555555555"),  # legacy Mexican mobile '1', kept as written
        ("+52 1 55 1234 5678", "+5215512345678"),
        ("+52 55 1234 5678", "+525512345678"),
        ("55 1234 5678", "+525512345678"),  # default region MX
        ("+1 202 555 0143", "+12025550143"),
    ],
)
def test_phone_normalization(raw: str, expected: str) -> None:
    assert phones.normalize(raw, "MX") == expected


@pytest.mark.parametrize("raw", ["+52 123", "hello", "", "+521 123", "+1" + "9" * 40])
def test_invalid_phone_numbers(raw: str) -> None:
    with pytest.raises(phones.InvalidPhoneNumber):
        phones.normalize(raw, "MX")


def test_segment_boundaries() -> None:
    assert segments.count("").segments == 1
    assert segments.count("a" * 306) == segments.SegmentInfo("GSM-7", 2, 306)
    assert segments.count("a" * 307).segments == 3
    # an extension character is never split across two segments
    assert segments.count("a" * 152 + "€" + "a" * 10).segments == 2
    assert segments.count("ó" * 134).segments == 2 and segments.count("ó" * 135).segments == 3


def test_key_checksum_catches_every_single_character_typo() -> None:
    key = crypto.with_checksum("sk_", 32)
    assert crypto.checksum_ok(key, "sk_", 32)
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    for position in range(3, len(key)):
        for replacement in alphabet[:5]:
            if replacement == key[position]:
                continue
            typo = key[:position] + replacement + key[position + 1 :]
            assert not crypto.checksum_ok(typo, "sk_", 32), typo
