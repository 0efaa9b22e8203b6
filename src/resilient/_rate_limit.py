"""Rate limiters: `TokenBucket` (a GCRA) and `SlidingWindow` (counter or log).

The algorithms are pure functions of ``(state, now, parameters, cost)`` returning the decision
and the new state, in integer **ticks** of one microsecond (``TICKS_PER_SECOND``):

- `gcra` — the generic cell rate algorithm behind `TokenBucket`: one timestamp per key, the
  theoretical arrival time (TAT).
- `sliding_counter` — the two-counter, weighted sliding window counter behind
  ``SlidingWindow(precise=False)``.
- `sliding_log` — the exact log of timestamps behind ``SlidingWindow(precise=True)``.

They do no I/O and read no clock. `resilient.stores.MemoryStore` applies the same formulas under
a lock, and the Lua scripts of `resilient.stores.RedisStore` implement them line for line in
Redis (whose Lua numbers are IEEE doubles, like Python floats), so every backend decides alike
and the tests compare each backend with these functions.

Integer ticks are why the formulas are exact: a token bucket of capacity N admits exactly N
calls at one instant, not N - 1 because ``0.1 * 10`` is not quite ``1.0``. The price is that the
emission interval ``1 / rate`` is rounded to a whole microsecond (see `TokenBucket`).

The limiter classes are thin drivers: they validate arguments, ask their store for a
`Decision`, and wait (``acquire``) or raise `RateLimitedError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar

from typing_extensions import ParamSpec

from ._clock import Clock, check_clock
from ._deadline import get_deadline
from ._errors import RateLimitedError
from ._events import HUB, RateLimited
from ._policy import Policy

if TYPE_CHECKING:
    from .stores._memory import MemoryStore
    from .stores._redis import RedisStore

__all__ = [
    "MAX_SPAN_TICKS",
    "TICKS_PER_SECOND",
    "Decision",
    "RateLimiter",
    "SlidingWindow",
    "TokenBucket",
    "gcra",
    "sliding_counter",
    "sliding_log",
]

P = ParamSpec("P")
R = TypeVar("R")

#: Time resolution of every limiter: one tick is one microsecond (Redis ``TIME`` resolution).
TICKS_PER_SECOND = 1_000_000
#: Longest period (emission interval x capacity, or window) a limiter may span, in ticks
#: (2**50 µs is about 35 years), so every tick count stays exact in a double.
MAX_SPAN_TICKS = 2**50


class Decision(NamedTuple):
    """What a rate limiter decided for one ``try_acquire``.

    An immutable, slotted record (a named tuple, so it is also cheap to build and can be
    unpacked). Its truth value is ``allowed``: ``if limiter.try_acquire(): ...`` does what it
    reads like.

    Attributes:
        allowed: whether the cost was granted (and consumed).
        limit: the most a key can hold: a `TokenBucket`'s capacity, a `SlidingWindow`'s limit.
        remaining: how many more units could be granted right now, after this decision.
        retry_after: seconds until this cost would be granted; 0.0 when allowed.
        reset_after: seconds until the key is back to full (nothing used).
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    reset_after: float

    def __bool__(self) -> bool:
        return self.allowed


_new_decision = tuple.__new__
_ONE = 1  # ``cost is not _ONE`` is the fast check for the default cost (small ints are cached)


# --------------------------------------------------------------------------------------------
# The pure algorithms. Times and durations are integer ticks; results are
# (allowed, remaining, retry_after, reset_after, new_state).
# --------------------------------------------------------------------------------------------


def gcra(
    tat: int | None, now: int, interval: int, tolerance: int, cost: int
) -> tuple[bool, int, int, int, int | None]:
    """One GCRA decision (virtual scheduling form).

    Args:
        tat: the key's theoretical arrival time, or None for a new key.
        now: the current time.
        interval: the emission interval, ticks per unit (``1 / rate``).
        tolerance: the burst tolerance, ``capacity * interval``.
        cost: units asked for, ``1 <= cost <= capacity``.

    Returns:
        ``(allowed, remaining, retry_after, reset_after, new_tat)``; the key may be forgotten
        once ``now >= new_tat`` (``reset_after`` from now).
    """
    if tat is None or tat < now:
        tat = now
    new_tat = tat + cost * interval
    backlog = new_tat - now
    if backlog <= tolerance:
        return True, (tolerance - backlog) // interval, 0, backlog, new_tat
    backlog = tat - now
    remaining = (tolerance - backlog) // interval if backlog <= tolerance else 0
    return False, remaining, new_tat - tolerance - now, backlog, tat


def sliding_counter(
    state: tuple[int, int, int] | None, now: int, window: int, limit: int, cost: int
) -> tuple[bool, int, int, int, tuple[int, int, int]]:
    """One sliding-window-counter decision (two fixed windows, the previous one weighted).

    The windows are fixed slots ``[k * window, (k + 1) * window)``. The count over the last
    ``window`` ticks is estimated as ``previous * (time left in the current slot) / window +
    current``, and the cost is granted when that estimate plus ``cost`` stays within ``limit``.
    Fractions are computed in doubles, in the same order as the Lua script, so both backends
    round alike.

    Args:
        state: ``(slot, previous_count, current_count)``, or None for a new key.
        now: the current time.
        window: the window length.
        limit: the most units per window.
        cost: units asked for, ``1 <= cost <= limit``.

    Returns:
        ``(allowed, remaining, retry_after, reset_after, new_state)``.
    """
    slot = now // window
    previous = current = 0
    if state is not None:
        if state[0] == slot:
            previous, current = state[1], state[2]
        elif state[0] == slot - 1:
            previous = state[2]
    left = window - (now - slot * window)  # ticks until the current slot ends, 1..window
    weighted = float(previous) * left / window
    if float(previous) * left <= float(limit - current - cost) * window:
        current += cost
        remaining = math.floor((limit - current) - weighted)
        return True, max(0, remaining), 0, left + window, (slot, previous, current)
    remaining = max(0, math.floor((limit - current) - weighted))
    room = limit - current - cost
    if room >= 0:  # the previous slot's share fades enough before this slot ends
        retry_after = math.ceil(left - float(room) * window / previous)
    else:  # only once this slot's count becomes the previous one
        retry_after = left + max(0, math.ceil(window - float(limit - cost) * window / current))
    reset_after = left + window if current > 0 else left
    return False, remaining, retry_after, reset_after, (slot, previous, current)


def sliding_log(
    entries: Sequence[int], now: int, window: int, limit: int, cost: int
) -> tuple[bool, int, int, int, list[int]]:
    """One sliding-window-log decision: exact, one timestamp per granted unit.

    A unit granted at ``t`` counts while ``now - window < t``.

    Args:
        entries: timestamps of granted units, newest first.
        now: the current time.
        window: the window length.
        limit: the most units per window.
        cost: units asked for, ``1 <= cost <= limit``.

    Returns:
        ``(allowed, remaining, retry_after, reset_after, new_entries)``; ``new_entries`` holds
        only the timestamps still inside the window, newest first.
    """
    horizon = now - window
    count = 0
    for timestamp in entries:
        if timestamp <= horizon:
            break
        count += 1
    if count + cost <= limit:
        return True, limit - count - cost, 0, window, [now] * cost + list(entries[:count])
    retry_after = entries[limit - cost] + window - now
    return False, limit - count, retry_after, entries[0] + window - now, list(entries[:count])


def honest_wait(reading: float, now: int, ticks: int) -> float:
    """Seconds to wait, from the clock reading ``reading`` (``now`` in ticks), for ``ticks``.

    ``ticks / TICKS_PER_SECOND`` is not always enough: a limiter reads the clock as
    ``round(reading * TICKS_PER_SECOND)``, and ``reading + wait`` is rounded to a double, which
    at a reading of 1e9 is a tenth of a microsecond and at 1e12 is 122 µs. The wait returned
    here is the smallest that is enough: a clock that has moved on by it from ``reading``
    reads at least ``now + ticks`` ticks, whatever its magnitude.
    """
    target = now + ticks
    wait = ticks / TICKS_PER_SECOND
    if round((reading + wait) * TICKS_PER_SECOND) >= target:
        return wait
    at = target / TICKS_PER_SECOND
    while round(at * TICKS_PER_SECOND) < target:
        at = math.nextafter(at, math.inf)
    wait = at - reading
    while reading + wait < at:
        wait = math.nextafter(wait, math.inf)
    return wait


# --------------------------------------------------------------------------------------------
# The drivers.
# --------------------------------------------------------------------------------------------


class _Backend(Protocol):
    """What a store gives a limiter: a decision function, sync and async."""

    def decide(self, key: str, cost: int) -> Decision: ...

    async def adecide(self, key: str, cost: int) -> Decision: ...


def _check_int(value: object, argument: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{argument} must be >= {minimum}, got {value!r}")
    return int(value)  # a plain int: an IntEnum's str() is not its number (Redis arguments)


def _check_seconds(value: object, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{argument} must be a number of seconds, got {value!r}")
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{argument} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_max_wait(value: object, argument: str = "max_wait") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{argument} must be a number of seconds or None, got {value!r}")
    if not value >= 0:
        raise ValueError(f"{argument} must be >= 0 or None, got {value!r}")
    return float(value)


def _check_name(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"name must be a str, got {value!r}")
    if not value:
        raise ValueError("name must not be empty")
    return value


class RateLimiter(Policy):
    """Base of `TokenBucket` and `SlidingWindow`: the acquire, wait and decorator logic.

    Not instantiated directly.
    """

    # ``__dict__`` lets a store install a faster ``try_acquire`` on the instance (see _setup).
    __slots__ = ("__dict__", "_backend", "_clock", "_decide", "_limit", "max_wait", "name", "store")

    kind = "rate_limiter"
    _limit: int
    _backend: _Backend
    _decide: Callable[[str, int], Decision]

    def _setup(
        self,
        *,
        store: MemoryStore | RedisStore | None,
        name: str,
        clock: Clock | None,
        max_wait: float | None,
    ) -> None:
        self.name = _check_name(name)
        self._clock = check_clock(clock, "clock")
        self.max_wait = _check_max_wait(max_wait)
        if store is None:
            from .stores._memory import MemoryStore

            store = MemoryStore()
        bind = getattr(store, "_bind_rate_limiter", None)
        if bind is None:
            raise TypeError(f"store must be a MemoryStore or a RedisStore, got {store!r}")
        self.store = store
        self._backend = bind(self)
        self._decide = self._backend.decide
        cls = type(self)
        fast = getattr(self._backend, "try_acquire", None)
        if fast is not None and cls.try_acquire is RateLimiter.try_acquire:
            # The memory token bucket's closure does everything `try_acquire` does (argument
            # check, decision, event); as an instance attribute it shadows the method, which
            # saves a Python call on the hot path. Not when a subclass overrides the method:
            # its override must run.
            self.__dict__["try_acquire"] = fast
        fast_async = getattr(self._backend, "atry_acquire", None)
        if fast_async is not None and cls.atry_acquire is RateLimiter.atry_acquire:
            self.__dict__["atry_acquire"] = fast_async

    # -- the parameters the stores read ----------------------------------------------------

    @property
    def algorithm(self) -> str:
        """``"gcra"``, ``"sliding_counter"`` or ``"sliding_log"``."""
        raise NotImplementedError

    @property
    def clock(self) -> Clock:
        """The clock the limiter reads (memory store) and sleeps on."""
        return self._clock

    def _params(self) -> tuple[int, int]:
        """The two integer parameters of the algorithm (see the store implementations)."""
        raise NotImplementedError

    def _check_cost(self, cost: object) -> int:
        cost = _check_int(cost, "cost")
        if cost > self._limit:
            raise ValueError(
                f"cost must be <= the limiter's {self._limit_word} ({self._limit}), got {cost}: "
                "such a cost could never be granted"
            )
        return cost

    _limit_word = "limit"

    # -- deciding ---------------------------------------------------------------------------

    def try_acquire(self, key: str = "", cost: int = 1) -> Decision:
        """Take ``cost`` units for ``key`` if they are available now; never waits.

        Args:
            key: which limit to charge; ``""`` (the default) is the limiter's global limit.
            cost: how many units to take, from 1 up to the limit (or capacity).

        Returns:
            The `Decision`; when ``allowed`` is false nothing was taken.

        Raises:
            ValueError: ``cost`` is below 1 or above the limit.
            StoreUnavailable: the store failed and was built with ``on_error="raise"``.
        """
        if cost is not _ONE:
            cost = self._check_cost(cost)
        decision = self._decide(key, cost)
        if not decision[0] and HUB.active:
            HUB.emit(RateLimited(self.kind, self.name, key, cost, decision[3]))
        return decision

    async def atry_acquire(self, key: str = "", cost: int = 1) -> Decision:
        """Async `try_acquire`: the same decision, through the store's async path."""
        if cost is not _ONE:
            cost = self._check_cost(cost)
        decision = await self._backend.adecide(key, cost)
        if not decision[0] and HUB.active:
            HUB.emit(RateLimited(self.kind, self.name, key, cost, decision[3]))
        return decision

    def _refuse(self, key: str, cost: int, decision: Decision) -> RateLimitedError:
        if HUB.active:
            HUB.emit(RateLimited(self.kind, self.name, key, cost, decision[3]))
        return RateLimitedError(self.name, decision[3], decision=decision)

    def _wait_for(self, decision: Decision, max_wait: float | None, started: float) -> bool:
        """Whether waiting ``decision.retry_after`` stays within max_wait and the deadline."""
        wait = decision[3]
        if max_wait is not None and wait > max_wait - (self._clock.monotonic() - started):
            return False
        deadline = get_deadline()
        return deadline is None or wait <= deadline.remaining()

    def acquire(self, key: str = "", cost: int = 1, max_wait: float | None = None) -> Decision:
        """Take ``cost`` units for ``key``, waiting for them if need be.

        Waits (sleeping on the limiter's clock) only when the wait fits both ``max_wait`` and
        the deadline in scope (see `resilient.timeout`); a wait that would pass either is not
        started at all.

        Args:
            key: which limit to charge; ``""`` is the global limit.
            cost: how many units to take, from 1 up to the limit (or capacity).
            max_wait: the longest to wait in seconds; None waits as long as it takes (bounded by
                the deadline in scope); 0 never waits.

        Returns:
            The granting `Decision`.

        Raises:
            RateLimitedError: the units cannot be had within ``max_wait`` or the deadline; it
                carries ``retry_after`` and the refusing ``decision``.
            ValueError: ``cost`` or ``max_wait`` is out of range.
        """
        if cost is not _ONE:
            cost = self._check_cost(cost)
        if max_wait is not None:  # checked first: a bad argument takes nothing
            max_wait = _check_max_wait(max_wait)
        decision = self._decide(key, cost)
        if decision[0]:
            return decision
        started = self._clock.monotonic()
        while True:
            if not self._wait_for(decision, max_wait, started):
                raise self._refuse(key, cost, decision)
            self._clock.sleep(decision[3])
            decision = self._decide(key, cost)
            if decision[0]:
                return decision

    async def aacquire(
        self, key: str = "", cost: int = 1, max_wait: float | None = None
    ) -> Decision:
        """Async `acquire`: waits with the clock's async sleep (asyncio or trio)."""
        if cost is not _ONE:
            cost = self._check_cost(cost)
        if max_wait is not None:
            max_wait = _check_max_wait(max_wait)
        adecide = self._backend.adecide
        decision = await adecide(key, cost)
        if decision[0]:
            return decision
        started = self._clock.monotonic()
        while True:
            if not self._wait_for(decision, max_wait, started):
                raise self._refuse(key, cost, decision)
            await self._clock.asleep(decision[3])
            decision = await adecide(key, cost)
            if decision[0]:
                return decision

    # -- policy forms: decorator, call, with -------------------------------------------------

    def guard(self, key: str = "", *, cost: int = 1, max_wait: float | None = 0.0) -> _Guard:
        """A policy charging ``cost`` units of ``key`` per call, waiting up to ``max_wait``.

        Use it where the limiter itself would charge the global key::

            @limiter.guard("search", cost=2, max_wait=0.5)
            def search(q): ...

            with limiter.guard("user:42"):
                ...
        """
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, got {key!r}")
        if cost is not _ONE:
            cost = self._check_cost(cost)
        return _Guard(self, key, cost, _check_max_wait(max_wait))

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Acquire one unit of the global key (waiting up to ``max_wait``), then call ``fn``."""
        self.acquire("", 1, self.max_wait)
        return fn(*args, **kwargs) if not HUB.timing else HUB.timed(self, None, fn, args, kwargs)

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Async `call`."""
        await self.aacquire("", 1, self.max_wait)
        return await (
            fn(*args, **kwargs) if not HUB.timing else HUB.atimed(self, None, fn, args, kwargs)
        )

    def __enter__(self) -> Decision:
        return self.acquire("", 1, self.max_wait)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    async def __aenter__(self) -> Decision:
        return await self.aacquire("", 1, self.max_wait)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None


class _Guard(Policy):
    """`RateLimiter.guard`: a policy charging a fixed key and cost."""

    __slots__ = ("cost", "key", "limiter", "max_wait")

    kind = "rate_limiter"

    def __init__(self, limiter: RateLimiter, key: str, cost: int, max_wait: float | None):
        self.limiter = limiter
        self.key = key
        self.cost = cost
        self.max_wait = max_wait

    @property
    def name(self) -> str:
        """The limiter's name."""
        return self.limiter.name

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Acquire the guard's units, then call ``fn``."""
        self.limiter.acquire(self.key, self.cost, self.max_wait)
        return (
            fn(*args, **kwargs)
            if not HUB.timing
            else HUB.timed(self.limiter, None, fn, args, kwargs)
        )

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Acquire the guard's units, then await ``fn``."""
        await self.limiter.aacquire(self.key, self.cost, self.max_wait)
        return await (
            fn(*args, **kwargs)
            if not HUB.timing
            else HUB.atimed(self.limiter, None, fn, args, kwargs)
        )

    def __enter__(self) -> Decision:
        return self.limiter.acquire(self.key, self.cost, self.max_wait)

    def __exit__(self, *exc_info: object) -> None:
        return None

    async def __aenter__(self) -> Decision:
        return await self.limiter.aacquire(self.key, self.cost, self.max_wait)

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def __repr__(self) -> str:
        return f"{self.limiter!r}.guard({self.key!r}, cost={self.cost}, max_wait={self.max_wait!r})"


#: ``N/unit``, ``N per unit`` or ``N/M units``, as the ``limits`` package writes rates, plus
#: the short units ``sec``, ``min``, ``hr`` and ``s``, ``m``, ``h``, ``d``.
_RATE = re.compile(
    r"\s*(\d+)\s*(?:/|per\b)\s*(\d+)?\s*"
    r"(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d)\s*",
    re.IGNORECASE | re.ASCII,
)
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse_rate(text: object, owner: str) -> tuple[int, int]:
    """``"100/minute"`` -> ``(100, 60)``: the count and the period in seconds."""
    if not isinstance(text, str):
        raise TypeError(f"{owner}.parse takes a str such as '100/minute', got {text!r}")
    match = _RATE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"cannot read {text!r} as a rate: write N/unit or N per unit, with unit one of "
            "second, minute, hour, day (e.g. '100/minute', '10 per second', '1000/5 minutes')"
        )
    count, multiple, unit = match.groups()
    period = _PERIODS[unit[0].lower()] * (int(multiple) if multiple else 1)
    if int(count) < 1 or period < 1:
        raise ValueError(f"a rate needs a count and a period of at least 1, got {text!r}")
    return int(count), period


class TokenBucket(RateLimiter):
    """A token bucket, implemented as GCRA: ``rate`` units per second, bursts of ``capacity``.

    A new key starts full: ``capacity`` units at once, then one every ``1 / rate`` seconds.
    Each key stores one timestamp (its theoretical arrival time), and a key whose bucket is
    full again is forgotten. ``Decision.limit`` is the capacity.

    ``1 / rate`` is rounded to a whole microsecond, so rates up to 10,000 per second are exact
    within 0.5 %; ``rate`` may be at most 1,000,000 per second.

    Args:
        rate: units added per second (> 0).
        capacity: the most units a key holds, i.e. the largest burst (an int >= 1).
        store: `resilient.stores.MemoryStore` (default: a private one) or
            `resilient.stores.RedisStore` to share the limit between processes.
        name: the limiter's name in events, errors and Redis keys (default ``"token_bucket"``).
            Limiters sharing a Redis store share state exactly when their names match.
        clock: the clock to read (memory store) and to sleep on; default the system clock.
        max_wait: how long the decorator, `call` and ``with`` forms wait for a unit of the
            global key (default 0: refuse at once; None: as long as the deadline allows).
    """

    __slots__ = ("_interval", "_tolerance", "capacity", "rate")

    _limit_word = "capacity"

    def __init__(
        self,
        rate: float,
        capacity: int,
        *,
        store: MemoryStore | RedisStore | None = None,
        name: str | None = None,
        clock: Clock | None = None,
        max_wait: float | None = 0.0,
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            hint = (
                f"; TokenBucket.parse({rate!r}) reads a rate string"
                if isinstance(rate, str)
                else ""
            )
            raise TypeError(f"rate must be a number of units per second, got {rate!r}{hint}")
        self.rate = _check_seconds(rate, "rate")
        self.capacity = _check_int(capacity, "capacity")
        interval = round(TICKS_PER_SECOND / self.rate)
        if interval < 1:
            raise ValueError(f"rate must be <= 1000000 per second, got {rate!r}")
        if interval * self.capacity > MAX_SPAN_TICKS:
            raise ValueError(
                f"capacity / rate must be at most {MAX_SPAN_TICKS // TICKS_PER_SECOND} seconds, "
                f"got capacity={capacity!r}, rate={rate!r}"
            )
        self._interval = interval
        self._tolerance = interval * self.capacity
        self._limit = self.capacity
        self._setup(
            store=store,
            name="token_bucket" if name is None else name,
            clock=clock,
            max_wait=max_wait,
        )

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        store: MemoryStore | RedisStore | None = None,
        name: str | None = None,
        clock: Clock | None = None,
        max_wait: float | None = 0.0,
    ) -> TokenBucket:
        """A token bucket from a rate as people write it: ``"100/minute"``, ``"10 per second"``.

        The count is the capacity and ``count / period`` the rate, so ``"100/minute"`` is
        ``TokenBucket(rate=100 / 60, capacity=100)``: a full bucket allows 100 calls at once,
        then one every 0.6 s. Units are second, minute, hour and day, in any case, with or
        without a plural ``s``; ``"1000/5 minutes"`` spans several units. For a burst smaller
        than the count, call the constructor.

        Args:
            text: the rate.
            store: as for the constructor.
            name: as for the constructor.
            clock: as for the constructor.
            max_wait: as for the constructor.

        Raises:
            ValueError: ``text`` is not a rate.
            TypeError: ``text`` is not a str.
        """
        count, period = _parse_rate(text, "TokenBucket")
        return cls(count / period, count, store=store, name=name, clock=clock, max_wait=max_wait)

    @property
    def algorithm(self) -> str:
        """``"gcra"``."""
        return "gcra"

    def _params(self) -> tuple[int, int]:
        return self._interval, self._tolerance

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate!r}, capacity={self.capacity!r}, name={self.name!r})"


class SlidingWindow(RateLimiter):
    """At most ``limit`` units per rolling ``window`` seconds, for each key.

    With ``precise=False`` (the default) it is the sliding window counter: two counters per
    key, the previous fixed window's count weighted by how much of it still overlaps the
    rolling window (Cloudflare's approximation; constant memory per key). With
    ``precise=True`` it keeps a log of the timestamps of granted units: exact, but
    ``O(limit)`` memory per key and per decision.

    Args:
        limit: the most units per window (an int >= 1).
        window: the window length in seconds (> 0; kept to the microsecond).
        precise: keep an exact log instead of two counters.
        store: `resilient.stores.MemoryStore` (default: a private one) or
            `resilient.stores.RedisStore`.
        name: the limiter's name (default ``"sliding_window"``); see `TokenBucket`.
        clock: the clock to read (memory store) and to sleep on.
        max_wait: how long the decorator, `call` and ``with`` forms wait (default 0).
    """

    __slots__ = ("_window_ticks", "limit", "precise", "window")

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        precise: bool = False,
        store: MemoryStore | RedisStore | None = None,
        name: str | None = None,
        clock: Clock | None = None,
        max_wait: float | None = 0.0,
    ) -> None:
        self.limit = _check_int(limit, "limit")
        self.window = _check_seconds(window, "window")
        if not isinstance(precise, bool):
            raise TypeError(f"precise must be a bool, got {precise!r}")
        self.precise = precise
        ticks = round(self.window * TICKS_PER_SECOND)
        if ticks < 1:
            raise ValueError(f"window must be at least 1e-06 seconds, got {window!r}")
        if ticks > MAX_SPAN_TICKS:
            raise ValueError(
                f"window must be at most {MAX_SPAN_TICKS // TICKS_PER_SECOND} seconds, "
                f"got {window!r}"
            )
        self._window_ticks = ticks
        self._limit = self.limit
        self._setup(
            store=store,
            name="sliding_window" if name is None else name,
            clock=clock,
            max_wait=max_wait,
        )

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        precise: bool = False,
        store: MemoryStore | RedisStore | None = None,
        name: str | None = None,
        clock: Clock | None = None,
        max_wait: float | None = 0.0,
    ) -> SlidingWindow:
        """A sliding window from a rate as people write it: ``"100/minute"``, ``"5 per second"``.

        The count is the limit and the period the window: ``"100/minute"`` is
        ``SlidingWindow(limit=100, window=60.0)``. Units as for `TokenBucket.parse`.

        Args:
            text: the rate.
            precise: as for the constructor.
            store: as for the constructor.
            name: as for the constructor.
            clock: as for the constructor.
            max_wait: as for the constructor.

        Raises:
            ValueError: ``text`` is not a rate.
            TypeError: ``text`` is not a str.
        """
        count, period = _parse_rate(text, "SlidingWindow")
        return cls(
            count,
            float(period),
            precise=precise,
            store=store,
            name=name,
            clock=clock,
            max_wait=max_wait,
        )

    @property
    def algorithm(self) -> str:
        """``"sliding_log"`` when precise, else ``"sliding_counter"``."""
        return "sliding_log" if self.precise else "sliding_counter"

    def _params(self) -> tuple[int, int]:
        return self._window_ticks, self.limit

    def __repr__(self) -> str:
        return (
            f"SlidingWindow(limit={self.limit!r}, window={self.window!r}, "
            f"precise={self.precise!r}, name={self.name!r})"
        )
