"""Moves the wall clock of this Python process when ``RECEIVER_TEST_CLOCK`` is set.

``.ci/shifted-clock`` puts this directory on PYTHONPATH, so pytest and every receiver it
starts run with ``time.time()`` and ``datetime.now()`` moved by the same amount (the first
process turns the destination into ``RECEIVER_TEST_CLOCK_OFFSET`` for the others) while
monotonic clocks keep running: a test that passes only on today's date fails there.
``RECEIVER_TEST_CLOCK`` is ``+<days>d`` or an ISO 8601 time with its offset.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta


def _offset_seconds(destination: str) -> float:
    if destination.startswith("+") and destination.endswith("d"):
        return timedelta(days=float(destination[1:-1])).total_seconds()
    target = datetime.fromisoformat(destination)
    if target.tzinfo is None:
        raise ValueError(f"RECEIVER_TEST_CLOCK needs an offset: {destination!r}")
    return target.timestamp() - time.time()


def _shift() -> None:
    offset = os.environ.get("RECEIVER_TEST_CLOCK_OFFSET")
    if offset is None:
        destination = os.environ.get("RECEIVER_TEST_CLOCK")
        if not destination:
            return
        offset = repr(_offset_seconds(destination))
        os.environ["RECEIVER_TEST_CLOCK_OFFSET"] = offset
    import time_machine

    # A timestamp, not a datetime: an aware datetime would also set the process's time zone.
    time_machine.travel(time.time() + float(offset), tick=True).start()


_shift()
