"""The memory idempotency backend: claim, complete, release, read; leases and bounds.

Every test runs on the C steps (resilient._speedups.Steps) and on the pure Python ones (the
``gcra_impl`` fixture chooses the extension or none).
"""

from __future__ import annotations

import gc
import sys
import threading
from typing import Any

import pytest

from resilient._clock import SYSTEM_CLOCK
from resilient._idempotency import CLAIMED, DONE, IN_PROGRESS, REUSED
from resilient.stores import MemoryStore
from resilient.testing import FakeClock

pytestmark = pytest.mark.usefixtures("gcra_impl")


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


def test_the_steps_are_the_chosen_version(gcra_impl: str) -> None:
    _, b = backend(FakeClock())
    native = type(b.claim).__name__ == "builtin_function_or_method"
    assert native == (gcra_impl == "c")


def test_the_steps_on_the_system_clock() -> None:
    store = MemoryStore()
    b = store._bind_idempotency(SYSTEM_CLOCK)
    key = b.storage_key("ns", "k")
    assert b.claim(key, 1, ("a", 5), 60_000) == (CLAIMED, None)
    status, left = b.claim(key, 2, ("a", 5), 60_000)
    assert status == IN_PROGRESS
    assert 59.0 < left <= 60.0
    assert b.complete(key, 1, b"5", 60_000)
    assert b.claim(key, 2, ("a", 5), 60_000) == (DONE, b"5")
    assert b.claim(key, 2, ("a", 6), 60_000) == (REUSED, None)
    assert not b.complete(key, 1, b"6", 60_000)  # done: never overwritten
    assert b.read(key) == ("done", ("a", 5), b"5")


def test_stale_entries_of_another_binding_are_swept_on_its_own_clock() -> None:
    store = MemoryStore(max_keys=1_000)
    old_clock, new_clock = FakeClock(), FakeClock(start=5_000.0)
    old = store._bind_idempotency(old_clock)
    new = store._bind_idempotency(new_clock)
    for name in "abcd":
        old.claim(old.storage_key("ns", name), 1, "fp", 1_000)
    old_clock.advance(2)  # the old binding's leases are over on its own clock
    for name in "efghijkl":
        new.claim(new.storage_key("ns", name), 1, "fp", 1_000)
    assert len(store) == 8  # the 4 stale ones were dropped by inserts of the other binding


class Exploding:
    """A fingerprint whose comparison raises."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("boom")

    __hash__ = object.__hash__


def test_an_error_with_the_lock_held_is_raised_and_releases_the_lock() -> None:
    store, b = backend(FakeClock())
    key = b.storage_key("ns", "k")
    b.claim(key, 1, Exploding(), 10_000)
    with pytest.raises(RuntimeError, match="boom"):
        b.claim(key, 2, "fp", 10_000)
    assert store._lock.acquire(blocking=False)  # released
    store._lock.release()
    with pytest.raises(TypeError):
        b.claim(b.storage_key("ns", "other"), 2, "fp", "10")
    with pytest.raises(TypeError):
        b.complete(key, 1, b"x")  # type: ignore[call-arg]
    assert b.complete(key, 1, b"x", 10_000)  # the store still works


def test_claims_race_in_threads_and_exactly_one_wins() -> None:
    _, b = backend(FakeClock())
    key = b.storage_key("ns", "k")
    barrier = threading.Barrier(8)
    won: list[int] = []

    def contend(owner: int) -> None:
        barrier.wait()
        for _ in range(200):
            if b.claim(key, owner, "fp", 60_000) == (CLAIMED, None):
                won.append(owner)

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1


def test_the_steps_leak_no_references() -> None:
    clock = FakeClock()
    _, b = backend(clock)
    fingerprint, owner, result = ("a", 10**30), object(), b"r"

    def counts() -> tuple[int, int, int]:
        gc.collect()
        return sys.getrefcount(fingerprint), sys.getrefcount(owner), sys.getrefcount(result)

    def rounds() -> None:
        for n in range(50):
            key = f"k{n}"
            b.claim(key, owner, fingerprint, 1_000)  # claimed
            b.claim(key, owner, fingerprint, 1_000)  # in progress
            b.claim(key, owner, "other", 1_000)  # reused
            b.complete(key, owner, result, 1_000)
            b.claim(key, owner, fingerprint, 1_000)  # done
            b.complete(key, owner, result, 1_000)  # not pending any more
        clock.advance(5)
        for n in range(50):
            b.claim(f"k{n}", owner, fingerprint, 1_000)  # expired: replaced
        clock.advance(5)

    rounds()
    before = counts()
    rounds()
    rounds()
    assert counts() == before


def test_a_ttl_of_centuries_is_stored() -> None:
    import resilient

    @resilient.idempotent(store=MemoryStore(), key=lambda name: name, ttl=1e12, lock_timeout=1e12)
    def call(name: str) -> int:
        return 1

    assert call("a") == call("a") == 1
