"""How many SMS segments a text takes, by the GSM 03.38 and UCS-2 rules."""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# (single-segment capacity, per-segment capacity once concatenated) in septets or UTF-16 units
_CAPACITY = {GSM7: (160, 153), UCS2: (70, 67)}


@dataclass(frozen=True)
class SegmentInfo:
    encoding: str
    segments: int
    units: int


def _units(text: str, encoding: str) -> list[int]:
    """Width of each character: septets for GSM-7, UTF-16 code units for UCS-2."""
    if encoding == GSM7:
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def count(text: str) -> SegmentInfo:
    """Encoding and segment count; a character is never split across two segments."""
    encoding = GSM7 if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text) else UCS2
    widths = _units(text, encoding)
    total = sum(widths)
    single, multi = _CAPACITY[encoding]
    if total <= single:
        return SegmentInfo(encoding, 1, total)
    segments, used = 1, 0
    for width in widths:
        if used + width > multi:
            segments += 1
            used = 0
        used += width
    return SegmentInfo(encoding, segments, total)
