"""Prometheus-style durations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from receiver.config.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("4h", timedelta(hours=4)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("0m", timedelta(0)),
        ("0s", timedelta(0)),
        ("1y", timedelta(days=365)),
        ("1d12h", timedelta(days=1, hours=12)),
        (
            "2w3d4h5m6s7ms",
            timedelta(weeks=2, days=3, hours=4, minutes=5, seconds=6, milliseconds=7),
        ),
        ("1m1ms", timedelta(minutes=1, milliseconds=1)),
        ("120m", timedelta(hours=2)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "15",
        "m",
        "1m1h",  # units out of order
        "1s1m",  # units out of order
        "1h1h",  # unit repeated
        "-5m",
        "1.5h",
        "15 m",
        " 15m",
        "15m ",
        "15M",
        "15min",
        "1x",
        "h1",
    ],
)
def test_parse_duration_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("value", [None, 15, 1.5])
def test_parse_duration_non_string(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(minutes=15), "15m"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=3), "3d"),
        (timedelta(weeks=1), "1w"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(days=8, hours=1), "1w1d1h"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value
