"""The Store interface: heartbeats' last signs of life and since when they are missed, on
every backend."""

from __future__ import annotations

from datetime import timedelta

from receiver.store import Store
from tests.store.builders import T0


async def test_a_sign_of_life_only_ever_moves_forward(store: Store) -> None:
    assert await store.heartbeats() == {}
    await store.heartbeats_seen({"watchdog": T0, "kis-token": T0 + timedelta(minutes=1)})
    await store.heartbeats_seen({"watchdog": T0 + timedelta(minutes=5)})
    await store.heartbeats_seen({"watchdog": T0 + timedelta(minutes=2)})  # a late webhook
    await store.heartbeats_seen({})
    assert await store.heartbeats() == {
        "kis-token": (T0 + timedelta(minutes=1), None),
        "watchdog": (T0 + timedelta(minutes=5), None),
    }


async def test_missed_since_is_recorded_and_cleared(store: Store) -> None:
    await store.heartbeats_seen({"watchdog": T0})
    await store.heartbeat_missed("watchdog", T0 + timedelta(minutes=7))
    assert await store.heartbeats() == {"watchdog": (T0, T0 + timedelta(minutes=7))}
    await store.heartbeats_seen({"watchdog": T0 + timedelta(minutes=9)})  # back: kept until cleared
    assert (await store.heartbeats())["watchdog"][1] == T0 + timedelta(minutes=7)
    await store.heartbeat_missed("watchdog", None)
    assert await store.heartbeats() == {"watchdog": (T0 + timedelta(minutes=9), None)}
    await store.heartbeat_missed("never-seen", T0)  # nothing to mark
    assert "never-seen" not in await store.heartbeats()
