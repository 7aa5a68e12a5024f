"""The Store interface: console password hashes, on every backend."""

from __future__ import annotations

from datetime import timedelta

from receiver.store import Store
from tests.store.builders import T0


async def test_a_password_is_set_and_replaced(store: Store) -> None:
    assert await store.password("kim") is None
    await store.set_password("kim", "$argon2id$first", T0)
    await store.set_password("lee", "$argon2id$lee", T0)
    assert await store.password("kim") == ("$argon2id$first", T0)
    await store.set_password("kim", "$argon2id$second", T0 + timedelta(hours=1))
    assert await store.password("kim") == ("$argon2id$second", T0 + timedelta(hours=1))
    assert await store.password("lee") == ("$argon2id$lee", T0)
