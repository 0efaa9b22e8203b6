"""Bulkhead: a limit on concurrent calls that holds across threads and tasks at once.

The core is a counter and a FIFO queue of waiters behind one `threading.Lock`, held only for
the few operations that change them. A free slot is taken without waiting (and, in async code,
without awaiting anything). When no slot is free a caller may queue: a thread blocks on a lock
of its own; a task waits on an anyio event of its own loop. A release hands its slot straight to
the first waiter (so the queue is FIFO and nobody can barge in) and wakes it: directly when the
waiter lives on the releasing thread, otherwise through its event loop's thread-safe entry
(``loop.call_soon_threadsafe`` on asyncio, the trio token's ``run_sync_soon`` on trio).

A waiter that times out or is cancelled takes itself out of the queue under the lock; if a
release granted it a slot in the meantime, it passes that slot on. So slots are never lost,
whatever raises or is cancelled, and wherever.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import anyio
from typing_extensions import ParamSpec, Self

from ._clock import Clock, check_clock
from ._deadline import get_deadline
from ._errors import BulkheadFullError
from ._events import HUB, CallRejected
from ._policy import Policy

__all__ = ["Bulkhead"]

P = ParamSpec("P")
R = TypeVar("R")

_allocate_lock = threading.Lock
_get_ident = threading.get_ident


class _Waiter:
    """One caller queued for a slot.

    ``granted`` is set (under the bulkhead's lock) by the release that hands it a slot; ``wake``
    then tells the caller, and returns False if the caller can no longer be told (its event
    loop is gone).
    """

    __slots__ = ("event", "granted", "lock", "schedule", "thread")

    def __init__(self) -> None:
        self.granted = False
        self.lock: Any = None
        self.event: Any = None
        self.schedule: Callable[[Callable[[], object]], object] | None = None
        self.thread = _get_ident()

    def wake(self) -> bool:
        if self.lock is not None:
            self.lock.release()
            return True
        if self.thread == _get_ident():
            self.event.set()
            return True
        try:
            self.schedule(self.event.set)  # type: ignore[misc]
        except Exception:  # the loop is closed or the trio run has finished
            return False
        return True


def _threadsafe_scheduler() -> Callable[[Callable[[], object]], object]:
    """How another thread can run a callback on the current event loop, soon."""
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        return trio.lowlevel.current_trio_token().run_sync_soon  # type: ignore[no-any-return]
    return asyncio.get_running_loop().call_soon_threadsafe


class Bulkhead(Policy):
    """Limits how many calls run at once; the rest wait briefly in FIFO order or are rejected.

    Up to ``max_concurrent`` calls run at the same time. When all slots are taken, up to
    ``max_waiting`` callers queue for a slot, first come first served, each for at most
    ``max_wait`` seconds (None: as long as the deadline in scope allows, or indefinitely
    without one). A caller never waits past the deadline in scope. Everyone else gets
    `BulkheadFullError` at once. The limit holds across threads and tasks (asyncio and trio)
    together.

    Works as a decorator, with `call` / `acall`, and as ``with`` / ``async with``.

    Args:
        max_concurrent: the number of slots (>= 1).
        max_waiting: how many callers may queue for a slot (default 0: none wait).
        max_wait: the longest a caller queues, in seconds (None: up to its deadline).
        name: used in errors, events and metrics (default ``"bulkhead"``).
        clock: where time is read (default the system clock). Waiting itself always uses
            real time.

    Raises:
        ValueError: ``max_concurrent < 1``, ``max_waiting < 0`` or ``max_wait < 0``.
    """

    __slots__ = (
        "_limit",
        "_lock",
        "_waiters",
        "clock",
        "in_use",
        "max_wait",
        "max_waiting",
        "name",
    )

    kind = "bulkhead"

    def __init__(
        self,
        max_concurrent: int,
        *,
        max_waiting: int = 0,
        max_wait: float | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int):
            raise TypeError(f"max_concurrent must be an int, got {max_concurrent!r}")
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent!r}")
        self._init_admission(max_concurrent, max_waiting, max_wait, name, clock)

    def _init_admission(
        self,
        limit: int,
        max_waiting: int,
        max_wait: float | None,
        name: str | None,
        clock: Clock | None,
    ) -> None:
        if isinstance(max_waiting, bool) or not isinstance(max_waiting, int):
            raise TypeError(f"max_waiting must be an int, got {max_waiting!r}")
        if max_waiting < 0:
            raise ValueError(f"max_waiting must be >= 0, got {max_waiting!r}")
        if max_wait is not None:
            if isinstance(max_wait, bool) or not isinstance(max_wait, (int, float)):
                raise TypeError(f"max_wait must be a number or None, got {max_wait!r}")
            if not max_wait >= 0:
                raise ValueError(f"max_wait must be >= 0, got {max_wait!r}")
            max_wait = float(max_wait)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {name!r}")
        self.name = name if name is not None else self.kind
        self.max_waiting = max_waiting
        self.max_wait = max_wait
        self.clock: Clock = check_clock(clock)
        self._lock = threading.Lock()
        self._limit = limit
        #: How many calls hold a slot right now.
        self.in_use = 0
        self._waiters: deque[_Waiter] = deque()
        HUB.track(self)  # metrics read ``in_use`` at scrape time

    # -- readable state ------------------------------------------------------------------------

    @property
    def max_concurrent(self) -> int:
        """The number of slots."""
        return self._limit

    @property
    def waiting(self) -> int:
        """How many callers are queued for a slot."""
        return len(self._waiters)

    @property
    def available(self) -> int:
        """Free slots right now (never negative)."""
        return max(0, self._limit - self.in_use)

    # -- admission -----------------------------------------------------------------------------

    def _retry_after(self) -> float:
        return 0.0

    def _full(self) -> BulkheadFullError:
        retry_after = self._retry_after()
        if HUB.active:
            HUB.emit(CallRejected(self.kind, self.name, "full", retry_after))
        return BulkheadFullError(self.name, retry_after)

    def _wait_time(self) -> float | None:
        """How long a caller may queue: ``max_wait`` capped by the deadline; None: forever."""
        wait = self.max_wait
        deadline = get_deadline()
        if deadline is not None:
            left = deadline.remaining()
            if wait is None or left < wait:
                wait = left
        return wait

    def _enqueue(self) -> _Waiter | bool:
        """Take a slot (True), queue a waiter, or neither is allowed (False). Lock held."""
        if self.in_use < self._limit and not self._waiters:
            self.in_use += 1
            return True
        if len(self._waiters) >= self.max_waiting:
            return False
        wait = self._wait_time()
        if wait is not None and wait <= 0:
            return False
        waiter = _Waiter()
        self._waiters.append(waiter)
        return waiter

    def _abandon(self, waiter: _Waiter) -> bool:
        """The waiter stops waiting; True if it was granted a slot after all."""
        with self._lock:
            if waiter.granted:
                return True
            self._waiters.remove(waiter)
            return False

    def _grant(self) -> list[_Waiter]:
        """Hand free slots to the first waiters; lock held. Returns the waiters to wake."""
        woken: list[_Waiter] = []
        waiters = self._waiters
        while waiters and self.in_use < self._limit:
            waiter = waiters.popleft()
            waiter.granted = True
            self.in_use += 1
            woken.append(waiter)
        return woken

    def _wake(self, woken: list[_Waiter]) -> None:
        for waiter in woken:
            if not waiter.wake():
                self._release()  # nobody will ever use that slot: pass it on

    def _release(self) -> None:
        """Give a slot back, handing it to the first waiter if there is one."""
        lock = self._lock
        lock.acquire()
        self.in_use -= 1
        if not self._waiters:
            lock.release()
            return
        try:
            woken = self._grant()
        finally:
            lock.release()
        self._wake(woken)

    def _acquire(self) -> None:
        """Take a slot, queueing for one if allowed (blocks the thread)."""
        lock = self._lock
        lock.acquire()
        if self.in_use < self._limit and not self._waiters:
            self.in_use += 1
            lock.release()
            return
        try:
            waiter = self._enqueue()
            if waiter.__class__ is _Waiter:
                waiter.lock = _allocate_lock()
                waiter.lock.acquire()
        finally:
            lock.release()
        if waiter is True:
            return
        if waiter is False:
            raise self._full()
        assert isinstance(waiter, _Waiter)
        wait = self._wait_time()
        try:
            # Beyond TIMEOUT_MAX (max_wait=inf, say) the lock refuses the timeout: wait without.
            timeout = -1 if wait is None or wait > threading.TIMEOUT_MAX else max(0.0, wait)
            waiter.lock.acquire(True, timeout)
        except BaseException:
            if self._abandon(waiter):
                self._release()
            raise
        if not self._abandon(waiter):
            raise self._full()

    async def _aacquire(self) -> None:
        """Take a slot, queueing for one if allowed; awaits nothing when a slot is free."""
        lock = self._lock
        lock.acquire()
        if self.in_use < self._limit and not self._waiters:
            self.in_use += 1
            lock.release()
            return
        try:
            waiter = self._enqueue()
            if waiter.__class__ is _Waiter:
                waiter.event = anyio.Event()
                waiter.schedule = _threadsafe_scheduler()
        finally:
            lock.release()
        if waiter is True:
            return
        if waiter is False:
            raise self._full()
        assert isinstance(waiter, _Waiter)
        wait = self._wait_time()
        try:
            with anyio.move_on_after(wait):
                await waiter.event.wait()
        except BaseException:
            if self._abandon(waiter):
                self._release()
            raise
        if not self._abandon(waiter):
            raise self._full()

    # -- calls ---------------------------------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` in a slot.

        Raises:
            BulkheadFullError: no slot, and no room or time to wait for one.
        """
        self._acquire()
        try:
            return (
                fn(*args, **kwargs) if not HUB.timing else HUB.timed(self, None, fn, args, kwargs)
            )
        finally:
            self._release()

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` in a slot.

        Raises:
            BulkheadFullError: no slot, and no room or time to wait for one.
        """
        await self._aacquire()
        try:
            return await (
                fn(*args, **kwargs) if not HUB.timing else HUB.atimed(self, None, fn, args, kwargs)
            )
        finally:
            self._release()

    def __enter__(self) -> Self:
        self._acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    async def __aenter__(self) -> Self:
        await self._aacquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._limit}, name={self.name!r}, in_use={self.in_use}, "
            f"waiting={len(self._waiters)})"
        )
