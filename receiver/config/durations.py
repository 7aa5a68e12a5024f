"""Prometheus-style durations (``90s``, ``15m``, ``1h30m``, ``1w``)."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "y": timedelta(days=365),
}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d|w|y))+")
_ORDER = ["y", "w", "d", "h", "m", "s", "ms"]


def parse_duration(text: str) -> timedelta:
    """Parse a Prometheus duration; units must appear largest first, each at most once."""
    if not isinstance(text, str) or not _WHOLE.fullmatch(text):
        raise ValueError(f"invalid duration {text!r}: expected e.g. 90s, 15m, 4h, 3d, 1w")
    total = timedelta()
    last = -1
    for number, unit in _PART.findall(text):
        position = _ORDER.index(unit)
        if position <= last:
            raise ValueError(f"invalid duration {text!r}: units must be ordered largest first")
        last = position
        total += int(number) * _UNITS[unit]
    return total


def format_duration(value: timedelta) -> str:
    """Render a timedelta back in Prometheus style (``1h30m``)."""
    ms = int(value.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    out = []
    for unit in _ORDER:
        size = int(_UNITS[unit].total_seconds() * 1000)
        count, ms = divmod(ms, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)
