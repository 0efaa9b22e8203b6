"""The memory idempotency backend: claim, complete, release, read; leases and bounds."""

from __future__ import annotations

from typing import Any

from resilient._idempotency import CLAIMED, DONE, IN_PROGRESS, REUSED
from resilient.stores import MemoryStore
from resilient.testing import FakeClock


def backend(clock: FakeClock, max_keys: int = 100) -> tuple[MemoryStore, Any]:
    store = MemoryStore(max_keys=max_keys)
    return store, store._bind_idempotency(clock)


def test_a_claim_is_exclusive_until_completed_then_returns_the_result() -> None:
    clock = FakeClock()
    _, b = backend(clock)
    key = b.storage_key("ns", "k")
    assert b.claim(key, "o1", "fp", 10_000) == (CLAIMED, None)
    clock.advance(4)
    assert b.claim(key, "o2", "fp", 10_000) == (IN_PROGRESS, 6.0)
    assert b.claim(key, "o2", "other", 10_000) == (REUSED, None)
    assert b.read(key) == ("pending", "fp", None)
    assert not b.complete(key, "o2", b"x", 60_000)
    assert b.complete(key, "o1", b"result", 60_000)
    assert b.claim(key, "o3", "fp", 10_000) == (DONE, b"result")
    assert b.claim(key, "o3", "other", 10_000) == (REUSED, None)
    assert b.read(key) == ("done", "fp", b"result")
    assert not b.release(key, "o1")  # done: not releasable
    clock.advance(60)
    assert b.read(key) is None
    assert b.claim(key, "o4", "other", 10_000) == (CLAIMED, None)


def test_release_is_owner_checked() -> None:
    clock = FakeClock()
    _, b = backend(clock)
    key = b.storage_key("ns", "k")
    b.claim(key, "o1", "fp", 10_000)
    assert not b.release(key, "o2")
    assert b.release(key, "o1")
    assert b.claim(key, "o2", "fp", 10_000) == (CLAIMED, None)


def test_an_expired_lease_frees_the_key_and_the_late_owner_cannot_complete() -> None:
    clock = FakeClock()
    _, b = backend(clock)
    key = b.storage_key("ns", "k")
    b.claim(key, "o1", "fp", 1_000)
    clock.advance(1.0)
    assert not b.complete(key, "o1", b"late", 60_000)
    assert b.claim(key, "o2", "fp", 1_000) == (CLAIMED, None)
    assert not b.complete(key, "o1", b"late", 60_000)
    assert b.complete(key, "o2", b"second", 60_000)
    assert b.read(key) == ("done", "fp", b"second")


def test_keys_are_hashed_and_namespaced() -> None:
    _, b = backend(FakeClock())
    first = b.storage_key("a", "k" * 10_000)
    assert len(first) < 80
    assert first != b.storage_key("b", "k" * 10_000)


def test_entries_count_towards_len_are_bounded_and_expire() -> None:
    clock = FakeClock()
    store, b = backend(clock, max_keys=3)
    for name in "abcd":
        key = b.storage_key("ns", name)
        b.claim(key, "o", "fp", 5_000)
    assert len(store) == 3
    assert b.read(b.storage_key("ns", "a")) is None  # the least recently used: evicted
    clock.advance(5)
    assert len(store) == 0
    b.claim(b.storage_key("ns", "x"), "o", "fp", 5_000)
    store.clear()
    assert len(store) == 0


def test_policies_sharing_a_store_and_a_clock_share_keys() -> None:
    clock = FakeClock()
    store = MemoryStore()
    assert store._bind_idempotency(clock) is store._bind_idempotency(clock)
    assert store._bind_idempotency(clock) is not store._bind_idempotency(FakeClock())


async def test_async_steps_are_the_sync_ones() -> None:
    clock = FakeClock()
    _, b = backend(clock)
    key = b.storage_key("ns", "k")
    assert await b.aclaim(key, "o", "fp", 1_000) == (CLAIMED, None)
    assert await b.acomplete(key, "o", b"r", 1_000)
    assert await b.aread(key) == ("done", "fp", b"r")
    assert not await b.arelease(key, "o")
