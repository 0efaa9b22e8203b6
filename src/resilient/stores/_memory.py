"""`MemoryStore`: limiter state in this process's memory, bounded and exact under concurrency.

Layout: one `collections.OrderedDict` per store maps ``(binding, key)`` to a small list whose
first item is the time (in the binding's clock ticks) after which the entry is worthless: a
token bucket that is full again, a window that has emptied. The dict is kept in
least-recently-used order, so the front holds the entries most likely to be stale:

- inserting a key first drops up to two expired entries from the front (idle keys expire
  without a timer or a sweeper thread), then, beyond ``max_keys``, evicts the least recently
  used entry even if it is still live (that key starts over, full);
- each limiter's global key ``""`` is held by its binding, outside the dict: the hot path for
  ``limiter.try_acquire()`` does no hashing, builds no key tuple and moves nothing. There is
  one such slot per limiter, so it does not threaten the bound.

One `threading.Lock` per store guards every read-modify-write. It is held for a few
arithmetic operations only, never across an ``await`` or the user's code, which makes the
store exact for threads and for asyncio or trio tasks alike (they never interleave inside a
decision). The decision formulas are those of `resilient._rate_limit` (`gcra`,
`sliding_counter`, `sliding_log`); the token bucket's are inlined here for speed, and the tests
check them against the reference functions.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from itertools import repeat
from typing import TYPE_CHECKING, Any

from .._clock import SYSTEM_CLOCK
from .._events import HUB, RateLimited
from .._native import load_speedups
from .._rate_limit import TICKS_PER_SECOND, Decision, honest_wait, sliding_counter
from ._keys import MAX_VERBATIM, recent_storage_key, storage_key

if TYPE_CHECKING:
    from .._circuit_breaker import CircuitBreaker, _MemoryBackend
    from .._clock import Clock
    from .._dead_letter import DeadLetterQueue
    from .._rate_limit import RateLimiter
    from ._memory_dead_letter import _MemoryDeadLetters
    from ._memory_idempotency import _MemoryIdempotency

__all__ = ["MemoryStore"]

_new = tuple.__new__
_NEVER = -(2**62)  # a timestamp before any real one: "no state"
_plain = str
_recent = recent_storage_key
_RECENT_COMPOSITES = 4096  # the most keys a token bucket remembers the composite key of


#: The C token bucket, read when a limiter is bound (the tests swap it to run both versions).
_speedups: Any = load_speedups()


class MemoryStore:
    """Limiter state in process memory: thread- and task-safe, bounded, exact.

    Idle keys expire on their own (a key is dropped once its state is back to "nothing used"),
    and beyond ``max_keys`` live keys the least recently used one is forgotten, so memory stays
    bounded whatever the number of distinct keys. ``len(store)`` is the number of keys held.

    A store may be shared by several limiters; each keeps its own keys (two limiters never
    share state through a `MemoryStore`, whatever their names; share the limiter instead).

    Args:
        max_keys: the most keys held at once (>= 1; default 100,000).
    """

    __slots__ = ("__weakref__", "_bindings", "_data", "_idempotency", "_lock", "max_keys")

    def __init__(self, max_keys: int = 100_000) -> None:
        if isinstance(max_keys, bool) or not isinstance(max_keys, int):
            raise TypeError(f"max_keys must be an int, got {max_keys!r}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys!r}")
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._data: OrderedDict[tuple[Any, str], list[Any]] = OrderedDict()
        self._bindings: weakref.WeakSet[_Binding] = weakref.WeakSet()
        self._idempotency: dict[Clock, _MemoryIdempotency] = {}

    def __len__(self) -> int:
        """The number of keys holding state (expired keys are dropped first)."""
        with self._lock:
            nows: dict[_Binding, int] = {}
            stale = []
            for composite, entry in self._data.items():
                binding = composite[0]
                now = nows.get(binding)
                if now is None:
                    now = nows[binding] = binding.now()
                if entry[0] <= now:
                    stale.append(composite)
            for composite in stale:
                del self._data[composite]
            defaults = sum(1 for binding in self._bindings if binding.default_live())
            return len(self._data) + defaults

    def clear(self) -> None:
        """Forget every key of every limiter using this store."""
        with self._lock:
            self._data.clear()
            for binding in self._bindings:
                binding.reset_default()

    def __repr__(self) -> str:
        return f"MemoryStore(max_keys={self.max_keys!r})"

    # -- internal API for the limiters ------------------------------------------------------

    def _insert(self, composite: tuple[Any, str], entry: list[Any]) -> None:
        """Add a new entry (lock held): drop stale entries at the front, evict beyond max_keys."""
        data = self._data
        for _ in range(2):
            if not data:
                break
            oldest, oldest_entry = next(iter(data.items()))
            if oldest_entry[0] > oldest[0].now():
                break
            del data[oldest]
        if len(data) >= self.max_keys:
            data.popitem(last=False)
        data[composite] = entry

    def _bind_rate_limiter(self, limiter: RateLimiter) -> _Binding:
        algorithm = limiter.algorithm
        binding: _Binding
        if algorithm == "gcra":
            binding = _GCRA(self, limiter)
        elif algorithm == "sliding_counter":
            binding = _SlidingCounter(self, limiter)
        elif algorithm == "sliding_log":
            binding = _SlidingLog(self, limiter)
        else:  # pragma: no cover - every limiter names one of the above
            raise ValueError(f"unknown rate-limit algorithm {algorithm!r}")
        self._bindings.add(binding)
        return binding

    def _bind_circuit_breaker(
        self, breaker: CircuitBreaker, settings: dict[str, Any]
    ) -> _MemoryBackend:
        # A breaker's state is a handful of fields and one window, owned by the breaker: it is
        # not one of the store's keys and does not count against max_keys.
        from .._circuit_breaker import _MemoryBackend

        return _MemoryBackend(**settings)

    def _bind_idempotency(self, clock: Clock) -> _MemoryIdempotency:
        # One binding per clock: policies sharing this store and clock share their keys.
        from ._memory_idempotency import _MemoryIdempotency

        with self._lock:
            binding = self._idempotency.get(clock)
            if binding is None:
                binding = self._idempotency[clock] = _MemoryIdempotency(self, clock)
            return binding

    def _bind_dead_letters(self, queue: DeadLetterQueue) -> _MemoryDeadLetters:
        # Parked entries are per queue name, kept outside the keys (no max_keys, no expiry).
        from ._memory_dead_letter import bind

        return bind(self, queue)


class _Binding:
    """One limiter's view of a `MemoryStore`."""

    __slots__ = ("__weakref__", "_limit", "_monotonic", "_store", "decide")

    decide: Callable[[str, int], Decision]

    def __init__(self, store: MemoryStore, limiter: RateLimiter) -> None:
        self._store = store
        self._monotonic = limiter.clock.monotonic
        self._limit = limiter._limit

    def now(self) -> int:
        """The limiter's clock, in ticks."""
        return round(self._monotonic() * TICKS_PER_SECOND)

    def default_live(self) -> bool:
        """Whether the global key holds state (lock held)."""
        raise NotImplementedError

    def reset_default(self) -> None:
        """Forget the global key's state (lock held)."""
        raise NotImplementedError

    async def adecide(self, key: str, cost: int) -> Decision:
        """The decision, for async callers: memory never waits, so it is the sync one."""
        return self.decide(key, cost)


class _GCRA(_Binding):
    """`resilient._rate_limit.gcra` over a `MemoryStore`, with an allocation-free default key.

    ``decide`` is the plain decision; ``try_acquire`` is the same closure with the argument
    check and the ``RateLimited`` event folded in, which the limiter installs as its own
    ``try_acquire`` so that the hot path is a single call (and ``atry_acquire``, one
    coroutine around it, as its own ``atry_acquire``).

    Both are the C versions from `resilient._speedups` when it is available (same formulas,
    same state: the global key's TAT in the C object, keyed TATs in the store), and closures
    built by `_build` otherwise.
    """

    __slots__ = ("_cell", "_native", "atry_acquire", "try_acquire")

    def __init__(self, store: MemoryStore, limiter: RateLimiter) -> None:
        super().__init__(store, limiter)
        self._cell = [_NEVER]  # the global key's TAT (pure Python version)
        self._native: Any = None
        try_acquire: Callable[..., Decision]
        if _speedups is not None:
            self._native = native = self._build_native(store, limiter)
            self.decide = native.decide
            self.try_acquire = try_acquire = native.try_acquire
        else:
            self.decide = self._build(store, limiter, public=False)
            self.try_acquire = try_acquire = self._build(store, limiter, public=True)

        async def atry_acquire(key: str = "", cost: int = 1) -> Decision:
            # Memory never waits: one coroutine around the sync decision, not two.
            return try_acquire(key, cost)

        atry_acquire.__doc__ = type(limiter).atry_acquire.__doc__
        self.atry_acquire = atry_acquire

    def _build(
        self, store: MemoryStore, limiter: RateLimiter, *, public: bool
    ) -> Callable[[str, int], Decision]:
        cell = self._cell
        interval, tolerance = limiter._params()
        capacity = self._limit
        lock = store._lock
        acquire = lock.acquire
        release = lock.release
        data = store._data
        get = data.get
        move_to_end = data.move_to_end
        insert = store._insert
        binding = self
        check_cost = limiter._check_cost
        hub = HUB
        kind = limiter.kind
        name = limiter.name
        micros = TICKS_PER_SECOND
        one = 1
        monotonic = self._monotonic
        system = limiter.clock is SYSTEM_CLOCK
        monotonic_ns = time.monotonic_ns
        storage = storage_key
        plain = str
        # key -> (self, its stored form), for recent keys: the key's form is decided once, and
        # the composite key of the store is not rebuilt on every call. Bounded: cleared when
        # full. Only exact str keys are looked up in it.
        composites: dict[str, tuple[_Binding, str]] = {}
        composite_of = composites.get

        def remember(key: str) -> tuple[_Binding, str]:
            composite = (binding, storage(key))
            if len(key) <= MAX_VERBATIM:
                if len(composites) >= _RECENT_COMPOSITES:
                    composites.clear()
                composites[key] = composite
            return composite

        def try_acquire(key: str = "", cost: int = 1) -> Decision:
            step = interval if cost is one else check_cost(cost) * interval
            if key.__class__ is plain:
                composite = (composite_of(key) or remember(key)) if key else None
            else:
                stored = storage(key)  # TypeError for a non-str key; a digest if need be
                composite = (binding, stored) if stored else None
            if system:
                now = monotonic_ns() // 1000
            else:
                reading = monotonic()
                now = round(reading * 1_000_000)
            if composite is None:
                acquire()
                try:
                    tat = cell[0]
                    if tat < now:
                        tat = now
                    new_tat = tat + step
                    backlog = new_tat - now
                    if backlog <= tolerance:
                        cell[0] = new_tat
                        return _new(
                            Decision,
                            (
                                True,
                                capacity,
                                (tolerance - backlog) // interval,
                                0.0,
                                backlog / micros if system else honest_wait(reading, now, backlog),
                            ),
                        )
                finally:
                    release()
            else:
                acquire()
                try:
                    entry = get(composite)
                    if entry is None:
                        tat = now
                    else:
                        move_to_end(composite)
                        tat = entry[0]
                        if tat < now:
                            tat = now
                    new_tat = tat + step
                    backlog = new_tat - now
                    if backlog <= tolerance:
                        if entry is None:
                            insert(composite, [new_tat])
                        else:
                            entry[0] = new_tat
                        return _new(
                            Decision,
                            (
                                True,
                                capacity,
                                (tolerance - backlog) // interval,
                                0.0,
                                backlog / micros if system else honest_wait(reading, now, backlog),
                            ),
                        )
                finally:
                    release()
            backlog = tat - now
            if system:
                retry_after = (new_tat - tolerance - now) / micros
            else:  # rounded so that waiting exactly this long on the clock is enough
                retry_after = honest_wait(reading, now, new_tat - tolerance - now)
            if public and hub.active:
                hub.emit(RateLimited(kind, name, key, cost, retry_after))
            return _new(
                Decision,
                (
                    False,
                    capacity,
                    (tolerance - backlog) // interval if backlog <= tolerance else 0,
                    retry_after,
                    backlog / micros if system else honest_wait(reading, now, backlog),
                ),
            )

        if public:
            try_acquire.__doc__ = type(limiter).try_acquire.__doc__
            # Named like the method it stands in for (argument errors quote it), as in C.
            try_acquire.__qualname__ = "TokenBucket.try_acquire"
        return try_acquire

    def _build_native(self, store: MemoryStore, limiter: RateLimiter) -> Any:
        interval, tolerance = limiter._params()
        kind = limiter.kind
        name = limiter.name

        def denied(key: str, cost: int, retry_after: float) -> None:
            # Called by the C decision only when the hub has listeners.
            HUB.emit(RateLimited(kind, name, key, cost, retry_after))

        return _speedups.GCRA(
            interval=interval,
            tolerance=tolerance,
            capacity=self._limit,
            tat=_NEVER,
            decision=Decision,
            lock=store._lock,
            data=store._data,
            insert=store._insert,
            binding=self,
            check_cost=limiter._check_cost,
            monotonic=None if limiter.clock is SYSTEM_CLOCK else self._monotonic,
            honest_wait=honest_wait,
            hub=HUB,
            denied=denied,
            storage_key=storage_key,
        )

    def now(self) -> int:
        if self._monotonic is time.monotonic:
            return time.monotonic_ns() // 1000
        return round(self._monotonic() * TICKS_PER_SECOND)

    def default_live(self) -> bool:
        tat = self._cell[0] if self._native is None else self._native.tat
        return bool(tat > self.now())

    def reset_default(self) -> None:
        self._cell[0] = _NEVER
        if self._native is not None:
            self._native.tat = _NEVER


class _SlidingCounter(_Binding):
    """`resilient._rate_limit.sliding_counter` over a `MemoryStore`.

    Entries are ``[expires_at, slot, previous, current]``.
    """

    __slots__ = ("_default", "_window")

    def __init__(self, store: MemoryStore, limiter: RateLimiter) -> None:
        super().__init__(store, limiter)
        self._window, _ = limiter._params()
        self._default: list[Any] = [_NEVER, 0, 0, 0]
        self.decide = self._decide

    def _decide(self, key: str = "", cost: int = 1) -> Decision:
        if key.__class__ is not _plain:
            stored = storage_key(key)  # TypeError for a non-str key; a digest if need be
        elif key:
            stored = _recent(key) or storage_key(key)
        else:
            stored = key
        store = self._store
        lock = store._lock
        lock.acquire()  # not ``with``: cheaper on the path of every decision
        try:
            # The clock is read under the lock: a decision made with an older time after one
            # made with a newer time would treat the key's newer slot as foreign and reset it.
            reading = self._monotonic()
            now = round(reading * TICKS_PER_SECOND)
            if stored == "":
                entry: list[Any] | None = self._default
                composite = None
            else:
                composite = (self, stored)
                entry = store._data.get(composite)
                if entry is not None:
                    store._data.move_to_end(composite)
            state = None if entry is None or entry[0] <= now else (entry[1], entry[2], entry[3])
            allowed, remaining, retry_after, reset_after, new = sliding_counter(
                state, now, self._window, self._limit, cost
            )
            if allowed:
                if entry is None:
                    store._insert(composite, [now + reset_after, *new])  # type: ignore[arg-type]
                else:
                    entry[0] = now + reset_after
                    entry[1], entry[2], entry[3] = new
        finally:
            lock.release()
        # `honest_wait(reading, now, reset_after)`, its common case inlined.
        reset = reset_after / TICKS_PER_SECOND
        if round((reading + reset) * TICKS_PER_SECOND) < now + reset_after:
            reset = honest_wait(reading, now, reset_after)
        return _new(
            Decision,
            (
                allowed,
                self._limit,
                remaining,
                honest_wait(reading, now, retry_after) if retry_after else 0.0,
                reset,
            ),
        )

    def default_live(self) -> bool:
        return bool(self._default[0] > self.now())

    def reset_default(self) -> None:
        self._default[:] = [_NEVER, 0, 0, 0]


class _SlidingLog(_Binding):
    """`resilient._rate_limit.sliding_log` over a `MemoryStore`.

    Entries are ``[expires_at, deque of timestamps, oldest first]``; the deque is bounded by
    the limit, so a key holds at most ``limit`` timestamps.
    """

    __slots__ = ("_default", "_window")

    def __init__(self, store: MemoryStore, limiter: RateLimiter) -> None:
        super().__init__(store, limiter)
        self._window, _ = limiter._params()
        self._default: list[Any] = [_NEVER, deque(maxlen=self._limit)]
        self.decide = self._decide

    def _decide(self, key: str = "", cost: int = 1) -> Decision:
        if key.__class__ is not _plain:
            stored = storage_key(key)  # TypeError for a non-str key; a digest if need be
        elif key:
            stored = _recent(key) or storage_key(key)
        else:
            stored = key
        store = self._store
        window = self._window
        limit = self._limit
        with store._lock:
            # Under the lock, so that timestamps enter the log in order (see _SlidingCounter).
            reading = self._monotonic()
            now = round(reading * TICKS_PER_SECOND)
            horizon = now - window
            if stored == "":
                entry: list[Any] | None = self._default
                composite = None
            else:
                composite = (self, stored)
                entry = store._data.get(composite)
                if entry is not None:
                    store._data.move_to_end(composite)
            log: deque[int] = deque(maxlen=limit) if entry is None else entry[1]
            while log and log[0] <= horizon:
                log.popleft()
            count = len(log)
            if count + cost <= limit:
                log.extend(repeat(now, cost))
                if entry is None:
                    store._insert(composite, [now + window, log])  # type: ignore[arg-type]
                else:
                    entry[0] = now + window
                reset = honest_wait(reading, now, window)
                return _new(Decision, (True, limit, limit - count - cost, 0.0, reset))
            # The (limit - cost + 1)-th newest timestamp must leave the window first.
            retry_after = log[count - 1 - (limit - cost)] + window - now
            reset_after = log[-1] + window - now
        return _new(
            Decision,
            (
                False,
                limit,
                limit - count,
                honest_wait(reading, now, retry_after),
                honest_wait(reading, now, reset_after),
            ),
        )

    def default_live(self) -> bool:
        return bool(self._default[0] > self.now())

    def reset_default(self) -> None:
        self._default[0] = _NEVER
        self._default[1].clear()
