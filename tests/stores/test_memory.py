"""MemoryStore: bounded memory, idle keys expire, LRU eviction, shared by limiters."""

from __future__ import annotations

import threading
import time

import pytest

from resilient import SlidingWindow, TokenBucket
from resilient.stores import MemoryStore
from resilient.testing import FakeClock

# Every test runs on the C and on the pure Python memory token bucket.
pytestmark = pytest.mark.usefixtures("gcra_impl")


def test_a_million_distinct_keys_keep_at_most_max_keys_entries() -> None:
    store = MemoryStore(max_keys=10_000)
    limiter = TokenBucket(rate=1.0, capacity=5, store=store, clock=FakeClock())
    try_acquire = limiter.try_acquire
    started = time.perf_counter()
    for chunk in range(10):
        for key in map(str, range(chunk * 100_000, (chunk + 1) * 100_000)):
            try_acquire(key)
        assert len(store._data) <= 10_000
        assert len(store) <= 10_000
    assert len(store) == 10_000  # none expired: the clock did not move
    assert time.perf_counter() - started < 30


def test_idle_keys_expire_once_back_to_full() -> None:
    clock = FakeClock()
    store = MemoryStore()
    limiter = TokenBucket(rate=10.0, capacity=2, store=store, clock=clock)
    limiter.try_acquire("a")
    limiter.try_acquire("b", cost=2)
    limiter.try_acquire()
    assert len(store) == 3
    clock.advance(0.1)  # "a" and the global key are full again; "b" needs 0.2 s
    assert len(store) == 1
    clock.advance(0.1)
    assert len(store) == 0


def test_inserting_drops_expired_entries_without_a_sweep() -> None:
    clock = FakeClock()
    store = MemoryStore()
    limiter = SlidingWindow(limit=5, window=1.0, store=store, clock=clock)
    for key in ("a", "b", "c"):
        limiter.try_acquire(key)
    clock.advance(10.0)
    limiter.try_acquire("d")  # drops up to two expired entries from the front
    assert len(store._data) == 2


def test_least_recently_used_key_is_evicted_first() -> None:
    clock = FakeClock()
    store = MemoryStore(max_keys=2)
    limiter = TokenBucket(rate=1.0, capacity=1, store=store, clock=clock)
    assert limiter.try_acquire("a")
    assert limiter.try_acquire("b")
    assert not limiter.try_acquire("a")  # "a" is now the most recently used
    assert limiter.try_acquire("c")  # evicts "b"
    assert not limiter.try_acquire("a")
    assert limiter.try_acquire("b")  # forgotten, so full again


def test_limiters_sharing_a_store_keep_separate_keys_and_one_bound() -> None:
    clock = FakeClock()
    store = MemoryStore(max_keys=3)
    first = TokenBucket(rate=1.0, capacity=1, store=store, clock=clock, name="same")
    second = SlidingWindow(limit=1, window=1.0, precise=True, store=store, clock=clock, name="same")
    assert first.try_acquire("k")
    assert second.try_acquire("k")
    for key in ("x", "y", "z"):
        first.try_acquire(key)
    assert len(store._data) == 3
    store.clear()
    assert len(store) == 0
    assert first.try_acquire("k")


class _HeldClock(FakeClock):
    """A fake clock whose reading by the thread named "held" blocks until released."""

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.reading = threading.Event()
        self.release = threading.Event()

    def monotonic(self) -> float:
        now = super().monotonic()
        if threading.current_thread().name == "held":
            self.reading.set()
            self.release.wait(10)
        return now


@pytest.mark.parametrize("precise", [False, True])
def test_a_sliding_window_never_decides_with_a_time_older_than_its_state(precise: bool) -> None:
    clock = _HeldClock(0.5)
    limiter = SlidingWindow(limit=10, window=1.0, precise=precise, clock=clock)
    admitted = sum(limiter.try_acquire("k").allowed for _ in range(9))
    results: list[bool] = []
    clock._now = 0.999
    held = threading.Thread(
        name="held", target=lambda: results.append(limiter.try_acquire("k").allowed)
    )
    held.start()
    assert clock.reading.wait(10)  # "held" has read 0.999 and is stalled
    clock._now = 1.0
    other = threading.Thread(target=lambda: results.append(limiter.try_acquire("k").allowed))
    other.start()
    other.join(0.2)  # (it cannot finish first when the clock is read under the store's lock)
    clock.release.set()
    held.join(10)
    other.join(10)
    admitted += sum(results) + sum(limiter.try_acquire("k").allowed for _ in range(10))
    assert admitted <= 10  # within half a second of a 10-per-second window
