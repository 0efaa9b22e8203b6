"""The C memory token bucket (resilient._speedups) behaves like the pure Python one.

The decision formulas of both versions are checked against the reference in
test_rate_limit.py and test_memory.py, which run every test on each version (the ``gcra_impl``
fixture). Here: what only a C function could get wrong, namely argument handling, errors
raised with the store's lock held, and references leaked.
"""

from __future__ import annotations

import gc
import inspect
import math
import sys
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from resilient import Decision, TokenBucket
from resilient.instrumentation import subscribe, unsubscribe
from resilient.stores import MemoryStore
from resilient.testing import FakeClock

from ._concurrency import admitted_by_threads

pytestmark = pytest.mark.usefixtures("gcra_impl")


def outcome(call: Callable[[], object]) -> object:
    """What a call returns, or the type and message of what it raises."""
    try:
        return call()
    except Exception as error:  # the error is the outcome being compared
        return (type(error), str(error))


def test_the_bound_try_acquire_is_the_chosen_version(gcra_impl: str) -> None:
    limiter = TokenBucket(rate=1.0, capacity=2)
    native = type(limiter.try_acquire).__name__ == "builtin_function_or_method"
    assert native == (gcra_impl == "c")


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        (("k",), {}),
        (("k", 2), {}),
        ((), {"key": "k"}),
        ((), {"cost": 2}),
        ((), {"key": "k", "cost": 2}),
        (("k",), {"cost": 2}),
        (("k", 1, 3), {}),
        (("k",), {"key": "j"}),
        (("k", 1), {"cost": 1}),
        ((), {"size": 1}),
        ((), {"cost": 0}),
        ((), {"cost": 9}),
        ((), {"cost": 1.0}),
        ((), {"cost": True}),
        ((None,), {}),
        (("k", 1, 3), {"bogus": 1}),
        (("k", 1, 3), {"cost": 1}),
        (("k", 1, 3), {"key": "x"}),
    ],
)
def test_arguments_are_taken_like_a_python_function(
    args: tuple[Any, ...], kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from resilient.stores import _memory

    def call(speedups: Any) -> object:
        monkeypatch.setattr(_memory, "_speedups", speedups)
        limiter = TokenBucket(rate=1.0, capacity=3, clock=FakeClock())
        return outcome(lambda: limiter.try_acquire(*args, **kwargs))

    chosen = _memory._speedups
    assert call(chosen) == call(None)


@pytest.mark.parametrize("reading", [math.nan, math.inf, -math.inf])
def test_clock_readings_round_refuses_are_refused_alike(
    reading: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resilient.stores import _memory

    class OddClock(FakeClock):
        def monotonic(self) -> float:
            return reading

    def call(speedups: Any) -> object:
        monkeypatch.setattr(_memory, "_speedups", speedups)
        limiter = TokenBucket(rate=1.0, capacity=3, clock=OddClock())
        return [outcome(partial(limiter.try_acquire, key)) for key in ("", "k")]

    chosen = _memory._speedups
    assert call(chosen) == call(None)


def test_decisions_hash_like_the_tuples_they_equal() -> None:
    clock = FakeClock()
    limiter = TokenBucket(rate=1.0, capacity=1, clock=clock)
    decisions = [limiter.try_acquire(), limiter.try_acquire(), limiter.try_acquire("k")]
    decisions.append(limiter.try_acquire("k"))
    for decision in decisions:
        assert hash(decision) == hash(tuple(decision))
        assert decision in {tuple(decision)}


def test_the_signature_is_readable() -> None:
    limiter = TokenBucket(rate=1.0, capacity=3)
    parameters = inspect.signature(limiter.try_acquire).parameters
    assert list(parameters) == ["key", "cost"]
    assert parameters["key"].default == ""
    assert parameters["cost"].default == 1


def test_a_non_str_key_raises_and_leaves_the_store_usable() -> None:
    store = MemoryStore()
    limiter = TokenBucket(rate=1.0, capacity=1, store=store, clock=FakeClock())
    with pytest.raises(TypeError, match="key must be a str"):
        limiter.try_acquire(["not", "a", "key"])  # type: ignore[arg-type]
    assert not store._lock.locked()
    assert limiter.try_acquire("k").allowed
    assert not limiter.try_acquire("k").allowed


def test_a_failing_release_is_raised_with_the_decision_error_as_context() -> None:
    class BadLock:
        def acquire(self) -> bool:
            return True

        def release(self) -> None:
            raise RuntimeError("release failed")

    class BrokenData(OrderedDict[Any, Any]):
        def move_to_end(self, key: Any, last: bool = True) -> None:
            raise LookupError("move_to_end failed")

    store = MemoryStore()
    store._lock = BadLock()  # type: ignore[assignment]
    store._data = BrokenData()
    limiter = TokenBucket(rate=1.0, capacity=1, store=store, clock=FakeClock())
    with pytest.raises(RuntimeError, match="release failed") as caught:
        limiter.try_acquire("k")  # a new key: inserted, then the release fails
    assert caught.value.__context__ is None
    with pytest.raises(RuntimeError, match="release failed") as caught:
        limiter.try_acquire("k")  # a known key: moving it fails, then the release fails
    assert isinstance(caught.value.__context__, LookupError)


def test_a_failing_clock_raises_its_own_error() -> None:
    class BrokenClock(FakeClock):
        def monotonic(self) -> float:
            raise RuntimeError("clock broke")

    store = MemoryStore()
    limiter = TokenBucket(rate=1.0, capacity=1, store=store, clock=BrokenClock())
    for key in ("", "k"):
        with pytest.raises(RuntimeError, match="clock broke"):
            limiter.try_acquire(key)
    assert not store._lock.locked()


def test_decisions_leak_no_references() -> None:
    clock = FakeClock()
    capacity = 10**6 + 7  # not a cached small int: its reference count is meaningful
    limiter = TokenBucket(rate=1.0, capacity=capacity, clock=clock)
    hot = "".join(["hot", "-key"])  # a key object of the test's own, counted below
    events: list[object] = []

    def run() -> None:
        # Global, keyed (new and existing, granted and refused), unobserved and observed.
        for listening in (False, True):
            if listening:
                subscribe(events.append)
            try:
                for i in range(2_000):
                    limiter.try_acquire()
                    limiter.try_acquire(hot, cost=capacity)  # refused after the first
                    limiter.try_acquire(f"new-{i}")
                    clock.advance(0.5)
            finally:
                if listening:
                    unsubscribe(events.append)
            events.clear()
        gc.collect()

    def counts() -> tuple[int, int, int]:
        return sys.getrefcount(capacity), sys.getrefcount(Decision), sys.getrefcount(hot)

    run()  # warm up: keys created, caches filled
    before = counts()
    run()
    assert counts() == before


def test_threads_on_the_global_key_never_over_admit() -> None:
    # The C global path relies on the GIL, not the store's lock: hammer it from threads.
    limiter = TokenBucket(rate=1e-3, capacity=1_000)
    assert admitted_by_threads(limiter, key="") == 1_000
