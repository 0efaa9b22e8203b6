"""Hedged calls: when a call is slow, start another one and take whichever answers first.

```python
import anyio
import resilient


@resilient.Hedge(0.05)
async def lookup(key: str) -> str:
    await anyio.sleep(0.001)
    return key.upper()


assert anyio.run(lookup, "a") == "A"
```

The attempts run as tasks of one anyio task group, so hedging works on asyncio and trio. When
an attempt succeeds, the task group is cancelled: the other attempts receive a cancellation at
their next checkpoint, and the call returns only after they have finished (their ``finally``
blocks and ``async with`` exits have run).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, NoReturn, TypeVar

import anyio
from anyio.abc import TaskGroup
from typing_extensions import ParamSpec

from ._clock import Clock, check_clock
from ._deadline import get_deadline
from ._events import HUB, HedgeStarted
from ._policy import Policy
from ._rate_limit import _check_int
from ._retry import _name_of

__all__ = ["Hedge"]

P = ParamSpec("P")
R = TypeVar("R")


class _Race:
    """The shared state of one hedged call: who is running, who won, what failed."""

    __slots__ = ("error", "failed", "result", "running", "scope", "waiter", "won")

    def __init__(self, scope: anyio.CancelScope) -> None:
        self.scope = scope
        self.waiter: anyio.CancelScope | None = None
        self.running = 0
        self.won = False
        self.failed = False  # an attempt failed since the driver last looked
        self.result: Any = None
        self.error: BaseException | None = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            waiter.cancel()


async def _attempt(
    race: _Race, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    try:
        result = await fn(*args, **kwargs)
    except Exception as exc:
        race.error = exc
        race.failed = True
    else:
        if not race.won:
            race.won = True
            race.result = result
            race.scope.cancel()  # every other attempt, and the driver's wait
    finally:
        race.running -= 1
        race.wake()


class Hedge(Policy):
    """Start another attempt when a call has not finished after ``delay`` seconds.

    Async only: decorate an ``async def``, call `acall`, or put it in a `Pipeline` that runs
    with ``acall``. Sync use (`call`, decorating a sync function, ``with``) raises `TypeError`:
    a thread cannot be cancelled, so the losing attempts could not be stopped.

    How a hedged call runs (as Polly's hedging strategy does):

    - The first attempt starts at once. Each time ``delay`` seconds pass without an answer,
      another attempt starts, up to ``max_hedged`` extra attempts.
    - An attempt that fails (raises an `Exception`) starts the next attempt at once, without
      waiting for the delay.
    - The first attempt to succeed wins: its result is returned, and every other attempt is
      cancelled and awaited, so its cleanup has run when the call returns.
    - When every attempt failed, the exception of the attempt that failed **last** is raised
      (the same object, unwrapped), as Polly returns the last outcome.
    - No attempt starts once the deadline in scope would have passed before it could start
      (the running ones go on; the deadline's own timeout cancels them).
    - Cancellation, `KeyboardInterrupt` and `SystemExit` are never treated as a failed attempt.

    Only hedge idempotent work: two attempts may both have their effect.

    Args:
        delay: seconds to wait for an answer before starting the next attempt (finite, >= 0;
            0 starts every attempt at once).
        max_hedged: the most extra attempts per call (an int >= 1; default 1).
        name: the name in events (default: the function's qualified name).
        clock: where the delay is measured and slept (default: the system clock).

    Raises:
        ValueError: ``delay`` or ``max_hedged`` is out of range.
        TypeError: an argument has the wrong type.
    """

    __slots__ = ("_clock", "delay", "max_hedged", "name")

    kind = "hedge"

    def __init__(
        self,
        delay: float,
        *,
        max_hedged: int = 1,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise TypeError(f"delay must be a number of seconds, got {delay!r}")
        if not math.isfinite(delay) or delay < 0:
            raise ValueError(f"delay must be a finite number >= 0, got {delay!r}")
        self.delay = float(delay)
        self.max_hedged = _check_int(max_hedged, "max_hedged")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {name!r}")
        self.name = name
        self._clock = check_clock(clock)

    def __repr__(self) -> str:
        return f"Hedge({self.delay!r}, max_hedged={self.max_hedged!r}, name={self.name!r})"

    # -- sync use is a mistake ------------------------------------------------------------------

    def _sync_use(self, what: str) -> NoReturn:
        raise TypeError(
            f"Hedge is async only ({what}): a thread cannot be cancelled, so a losing attempt "
            "could not be stopped; use it on an async function or with `await hedge.acall(...)`"
        )

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Always raises `TypeError`: hedging is async only (use `acall`)."""
        self._sync_use("Hedge.call")

    def _wrap_sync(self, fn: Callable[P, R]) -> Callable[P, R]:
        self._sync_use(f"cannot decorate the sync function {fn!r}")

    def __enter__(self) -> NoReturn:
        self._sync_use("it does not guard `with` blocks")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def __aenter__(self) -> NoReturn:
        self._sync_use("it does not guard `async with` blocks: it must be able to rerun the call")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    # -- the hedged call ------------------------------------------------------------------------

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)``, hedging it as configured; return the first success."""
        delay = self.delay
        max_hedged = self.max_hedged
        clock = self._clock
        deadline = get_deadline()
        async with anyio.create_task_group() as tg:
            race = _Race(tg.cancel_scope)
            race.running = 1
            tg.start_soon(_attempt, race, fn, args, kwargs)
            started = 1
            while not race.won:
                more = started <= max_hedged
                if race.failed:
                    race.failed = False
                    if more and (deadline is None or deadline.remaining() > 0.0):
                        started = self._start(tg, race, fn, args, kwargs, started)
                        continue
                if not more or (deadline is not None and deadline.remaining() <= delay):
                    if race.running == 0:
                        break  # every attempt failed
                    with anyio.CancelScope() as race.waiter:
                        await anyio.sleep_forever()
                    race.waiter = None
                    continue
                with anyio.CancelScope() as waiter:
                    race.waiter = waiter
                    await clock.asleep(delay)
                race.waiter = None
                if not waiter.cancel_called:  # the delay passed with no answer
                    started = self._start(tg, race, fn, args, kwargs, started)
        if race.won:
            return race.result  # type: ignore[no-any-return]
        error = race.error
        assert error is not None
        try:
            raise error
        finally:
            del error, race

    def _start(
        self,
        tg: TaskGroup,
        race: _Race,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        started: int,
    ) -> int:
        started += 1
        if HUB.active:
            HUB.emit(HedgeStarted(self.kind, self.name or _name_of(fn, args), started))
        race.running += 1
        tg.start_soon(_attempt, race, fn, args, kwargs)
        return started

    def _wrap_async(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        acall = self.acall
        if self.name is None:
            hedge = Hedge.__new__(Hedge)
            hedge.delay, hedge.max_hedged, hedge._clock = self.delay, self.max_hedged, self._clock
            hedge.name = _name_of(fn)
            acall = hedge.acall

        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return await acall(fn, *args, **kwargs)

        return wrapper
