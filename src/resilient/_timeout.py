"""Timeouts: scope a deadline, and (in async code) cancel the work when it passes.

```python
import anyio
import resilient


async def main() -> None:
    try:
        async with resilient.timeout(0.01):
            await anyio.sleep(10)
    except resilient.DeadlineExceeded:
        print("gave up after 10 ms")


anyio.run(main)
```

Entering a timeout puts a deadline in the ContextVar of `resilient._deadline` (the earliest one
in scope wins). The entry record *is* the deadline object in the ContextVar, so one `Timeout`
can be entered by many threads and tasks at once, and nested in itself: nothing per entry is
stored on the shared object.

On asyncio (Python 3.11+) the async timeout schedules one ``loop.call_at`` that cancels the
task, and converts that cancellation into `DeadlineExceeded` on the way out, using
``Task.uncancel()`` exactly as ``asyncio.timeout`` does. Elsewhere (trio, and asyncio on 3.10)
it uses an ``anyio.CancelScope`` with a deadline.

A native ``task.cancel()`` would go through anyio shielded scopes, so when the deadline passes
while the task is inside an anyio shielded scope entered within the timeout, the timeout does
not cancel yet: it looks again every millisecond and cancels once the shield is left (trio's
and anyio's own behaviour). To tell such scopes from shields around the timeout, entering
records the anyio scope the task is in (read from anyio's task states).
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from asyncio import CancelledError, current_task
from asyncio import _get_running_loop as _running_loop
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextvars import Token
from heapq import heapify, heappop, heappush
from types import FrameType, TracebackType
from typing import Any, TypeVar
from weakref import WeakKeyDictionary
from weakref import ref as _ref

import anyio
from typing_extensions import ParamSpec

from ._clock import Clock, SystemClock, check_clock
from ._deadline import Deadline, _current
from ._errors import DeadlineExceeded
from ._events import HUB, DeadlineExceededEvent
from ._native import load_speedups
from ._policy import Policy
from ._scopes import BELOW, DATA, OWNER, ScopeStack, caller_frame

__all__ = ["Timeout", "timeout"]

P = ParamSpec("P")
R = TypeVar("R")

_UNCANCEL = sys.version_info >= (3, 11)  # Task.uncancel() / Task.cancelling()


class _Scope(Deadline):
    """One entry of a timeout: the deadline in force plus what it needs to undo itself."""

    __slots__ = (
        "anyio_scope",
        "cancelling",
        "closed",
        "done",
        "fired",
        "frame",
        "handle",
        "outer",
        "owner",
        "scope",
        "soon",
        "task",
        "token",
    )

    anyio_scope: Any
    cancelling: int
    closed: bool
    done: bool
    fired: bool
    frame: FrameType | None
    handle: Any
    outer: Deadline | None
    owner: Timeout
    scope: anyio.CancelScope | None
    soon: Callable[..., Any]
    task: Any
    token: Token[Deadline | None]

    def __repr__(self) -> str:
        return f"Deadline(at={self.at!r}, clock={self.clock!r})"

    def passed(self) -> bool:
        """Whether this deadline fired (cancelling the work) or has passed on its clock."""
        if self.fired:
            return True
        scope = self.scope
        if scope is not None and scope.cancel_called:
            return True
        return self.clock.monotonic() >= self.at


def _fire_task(entry: _Scope) -> None:
    if _shielded(entry):
        # Work inside an anyio shielded scope entered within this timeout: as on trio, it is
        # not interrupted; the task is cancelled once it has left the shielded scope.
        entry.handle = _running_loop().call_later(_SHIELD_RECHECK, _fire_task, entry)  # type: ignore[union-attr]
        return
    entry.fired = True
    entry.task.cancel()


# How often a deadline that passed inside a shielded scope looks again (asyncio).
_SHIELD_RECHECK = 0.001


class _Timers:
    """The deadlines of one asyncio event loop's timeouts, behind one ``loop.call_at`` handle.

    A timeout entered on asyncio does not schedule a timer of its own: its deadline goes on
    this heap, as an item ``[when, seq, entry, timers]`` (``when`` on the loop's clock, ``seq``
    breaking ties), and one timer is armed for the earliest. An exit clears its item's entry
    (and pops it when it is the earliest); when the timer fires, every due entry is fired and
    the timer is armed again for the earliest one left. Cleared items are dropped when they
    reach the top, or all at once when they outnumber the open ones.
    """

    __slots__ = ("armed", "handle", "heap", "loop", "stale")

    def __init__(self, loop: Any) -> None:
        self.loop = _ref(loop)  # weak: the loop is the key of these timers in `_all_timers`
        self.heap: list[list[Any]] = []
        self.armed = math.inf  # when the timer is armed for (inf: not armed)
        self.handle: Any = None  # a weak reference to the armed TimerHandle
        self.stale = 0  # cleared items in the heap, below its top

    def arm(self, when: float) -> None:
        armed = self.handle() if self.handle is not None else None
        if armed is not None:
            armed.cancel()
        self.armed = when
        loop: Any = self.loop()
        handle = loop.call_at(when, self.fire)
        try:  # held weakly: a handle holds its loop, which must not outlive its tasks for this
            self.handle = _ref(handle)
        except TypeError:  # a handle without weak references
            self.handle = lambda: handle

    def fire(self) -> None:
        loop: Any = self.loop()
        due = max(self.armed, loop.time())  # the loop ran it: everything until then is due
        self.handle = None
        self.armed = math.inf
        heap = self.heap
        try:
            while heap and heap[0][0] <= due:
                entry = heappop(heap)[2]
                if entry is None:
                    self.stale -= 1
                    continue
                try:
                    _fire_task(entry)
                except Exception as exc:  # reported as a callback's would be; the others fire
                    loop.call_exception_handler(
                        {"message": "resilient.timeout failed to cancel a task", "exception": exc}
                    )
        finally:
            self.drop_cleared()
            if heap:
                self.arm(heap[0][0])

    def drop_cleared(self) -> None:
        heap = self.heap
        while heap and heap[0][2] is None:
            heappop(heap)
            self.stale -= 1

    def clear(self, item: list[Any]) -> None:
        """An entry has exited before its deadline: its item no longer fires."""
        item[2] = None
        heap = self.heap
        if heap and heap[0] is item:
            heappop(heap)
            self.drop_cleared()
        else:
            self.stale += 1
            if self.stale > 64 and self.stale * 2 > len(heap):
                heap[:] = [kept for kept in heap if kept[2] is not None]
                heapify(heap)
                self.stale = 0


def _timers_of(loop: Any) -> _Timers | None:
    """The shared timers of ``loop`` (made on first use); None if it has no weak references."""
    global _last_timers
    try:
        timers = _all_timers.get(loop)
        if timers is None:
            timers = _all_timers[loop] = _Timers(loop)
    except TypeError:  # not weakly referenceable
        return None
    _last_timers = timers
    return timers


_all_timers: WeakKeyDictionary[Any, _Timers] = WeakKeyDictionary()
# The timers used last (their loop is checked before use: threads may run other loops).
_last_timers: _Timers | None = None
_sequence = itertools.count()


def _cancel(entry: _Scope) -> None:
    """Stop ``entry``'s timer: its item on the shared timers, or a handle of its own."""
    handle = entry.handle
    if handle.__class__ is list:
        handle[3].clear(handle)
    else:
        handle.cancel()


_ANYIO_ASYNCIO = "anyio._backends._asyncio"


def _anyio_scope(task: Any) -> Any:
    """The anyio cancel scope ``task`` is in (asyncio), or None. On the hot path: kept lean."""
    backend = _modules.get(_ANYIO_ASYNCIO)
    if backend is None:
        return None
    # anyio's WeakKeyDictionary of task states, read through its dict (a third of the cost).
    state = backend._task_states.data.get(_ref(task))
    return None if state is None else state.cancel_scope


_modules = sys.modules
_monotonic = time.monotonic
_new_scope = _Scope.__new__


def _shielded(entry: _Scope) -> bool:
    """Whether the task is inside an anyio shielded scope entered after ``entry``."""
    scope = _anyio_scope(entry.task)
    outer = entry.anyio_scope
    while scope is not None and scope is not outer:
        if getattr(scope, "_shield", False):
            return True
        scope = getattr(scope, "_parent_scope", None)
    return False


def _poll_task(entry: _Scope) -> None:
    # A deadline on a clock the event loop does not know (a FakeClock): look at it once per
    # event-loop iteration until it passes.
    if entry.clock.monotonic() >= entry.at:
        _fire_task(entry)
    else:
        entry.handle = entry.soon(_poll_task, entry)


def _poll_scope(entry: _Scope) -> None:
    if entry.done:
        return
    if entry.clock.monotonic() >= entry.at:
        entry.fired = True
        if entry.scope is not None:
            entry.scope.cancel()
    else:
        entry.handle = entry.soon(_poll_scope, entry)


def _call_soon() -> Callable[..., Any]:
    """The current event loop's "run this callback soon" (asyncio or trio)."""
    loop = _running_loop()
    if loop is not None:
        return loop.call_soon
    import trio  # only reachable on trio

    return trio.lowlevel.current_trio_token().run_sync_soon


class Timeout(Policy):
    """A deadline ``seconds`` from entry; async work is cancelled when it passes.

    Use it as ``with`` / ``async with`` (the value bound by ``as`` is the `Deadline` in force),
    as a decorator on sync and async functions, through `call` / `acall`, or in a `Pipeline`.

    - Nested deadlines never extend each other: the earliest in scope wins.
    - Async: when the deadline passes the work is cancelled (asyncio and trio) and
      `DeadlineExceeded` is raised, but only when it was this scope's deadline that fired; any
      other cancellation propagates unchanged.
    - Work inside an ``anyio.CancelScope(shield=True)`` entered within the timeout is not
      interrupted, on asyncio as on trio: the cancellation comes once the shield is left.
    - Sync: Python cannot interrupt a thread safely, so the timeout is cooperative: it scopes
      the deadline (which every resilient policy inside obeys) and raises `DeadlineExceeded` on
      entry if the deadline has already passed. When the block returns after the deadline, its
      result is kept and no error is raised.
    - With a clock other than the system clock (e.g. `FakeClock`), the deadline is measured on
      that clock; async work is cancelled at the first event-loop iteration after the clock
      passes the deadline, checked once per iteration while the block runs.

    Args:
        seconds: the time allowed, counted from entry; a finite number >= 0.
        name: the name in events (default: the decorated function's qualified name, or
            ``"timeout"`` for ``with`` blocks).
        clock: where the deadline is measured (default: the system clock).

    Raises:
        ValueError: ``seconds`` is negative or not finite.
    """

    __slots__ = ("_clock", "name", "seconds")

    kind = "timeout"

    def __init__(self, seconds: float, *, name: str | None = None, clock: Clock | None = None):
        if type(seconds) is float and 0.0 <= seconds < math.inf and name is None and clock is None:
            self.seconds = seconds  # the common case, kept cheap: timeout(2.0) per call
            self.name = None
            self._clock = _SYSTEM
            return
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"seconds must be a number, got {seconds!r}")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
        self.seconds = float(seconds)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {name!r}")
        self.name = name
        self._clock = check_clock(clock) if clock is not None else _SYSTEM

    def __repr__(self) -> str:
        return f"Timeout({self.seconds!r}, name={self.name!r})"

    # -- entering and leaving -------------------------------------------------------------------

    def _push(self, name: str | None) -> tuple[_Scope, float]:
        """The new deadline in force and the seconds left; raises if it has already passed."""
        clock = self._clock
        now = clock.monotonic()
        entry = _Scope.__new__(_Scope)
        entry.at = now + self.seconds
        entry.clock = clock
        entry.timeout = self.seconds
        left = self.seconds
        outer = _current.get()
        if outer is not None:
            outer_left = outer.at - now if outer.clock is clock else outer.remaining()
            if outer_left < left:
                entry.at, entry.clock, entry.timeout = outer.at, outer.clock, outer.timeout
                left = outer_left
        if left <= 0.0:
            self._exceeded(name, entry.timeout)
            raise DeadlineExceeded(_message(entry.timeout), timeout=entry.timeout)
        entry.fired = False
        entry.scope = None
        entry.handle = None
        entry.owner = self
        entry.frame = None
        entry.outer = outer
        entry.closed = False
        return entry, left

    def _exceeded(self, name: str | None, seconds: float | None) -> None:
        if HUB.active:
            HUB.emit(DeadlineExceededEvent(self.kind, name or self.name or "timeout", seconds))

    def __enter__(self) -> Deadline:
        outer = _current.get()
        seconds = self.seconds
        if outer is None and self._clock is _SYSTEM and seconds > 0.0:
            # The common case, inlined (the steps of `_push`): the system clock, no deadline
            # in scope yet.
            entry = _new_scope(_Scope)
            entry.at = _monotonic() + seconds
            entry.clock = _SYSTEM
            entry.timeout = seconds
            entry.fired = False
            entry.scope = None
            entry.handle = None
            entry.owner = self
            entry.frame = None
            entry.outer = None
            entry.closed = False
        else:
            entry = self._push(None)[0]
        # `_sync_entries.record(self, entry, frame)`, inlined (this is the hot path).
        frame = caller_frame(1)
        record = [self, entry, frame, _sync_frames.get(frame), None, False]
        _sync_frames[frame] = record
        _sync_open[id(record)] = record
        _current.set(entry)
        return entry

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The exit may run in another context than the entry (a generator resumed elsewhere,
        # another worker thread): find this block's own entry, close it, and if its deadline
        # is the one in scope here, restore the nearest enclosing one still open.
        frame = caller_frame(1)
        record = _sync_frames.get(frame)
        if (
            record is not None
            and record[OWNER] is self
            and record[BELOW] is None
            and _sync_open.pop(id(record), None) is not None
        ):
            # The common case of `_sync_entries.pop`, inlined: the frame's only entry.
            _sync_frames.pop(frame, None)
            # The record is referenced nowhere else now: no need to close it.
            entry: _Scope = record[DATA]
        else:
            entry = _sync_entries.pop(self, frame, _open_deadlines)
        _leave(entry)

    def _enter_async(self, name: str | None, frame: FrameType | None = None) -> _Scope:
        entry, left = self._push(name)
        entry.frame = frame
        real = type(entry.clock) is SystemClock
        loop = _running_loop()
        if loop is not None and _UNCANCEL:
            task: Any = current_task(loop)
            entry.task = task
            entry.cancelling = task.cancelling()
            entry.anyio_scope = _anyio_scope(task)
            if real:
                entry.handle = loop.call_at(loop.time() + left, _fire_task, entry)
            else:
                entry.soon = loop.call_soon
                entry.handle = loop.call_soon(_poll_task, entry)
        else:
            scope = anyio.CancelScope(deadline=anyio.current_time() + left if real else math.inf)
            scope.__enter__()
            entry.scope = scope
            entry.done = False
            if not real:
                entry.soon = _call_soon()
                entry.handle = entry.soon(_poll_scope, entry)
        _current.set(entry)
        return entry

    def _exit_async(
        self,
        entry: _Scope,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        name: str | None,
    ) -> bool:
        _leave(entry)
        scope = entry.scope
        if scope is None:  # asyncio, Task.uncancel() available
            if not entry.fired:
                _cancel(entry)
                return False
            if entry.task.uncancel() <= entry.cancelling and exc_type is CancelledError:
                self._exceeded(name, entry.timeout)
                raise DeadlineExceeded(_message(entry.timeout), timeout=entry.timeout) from exc
            return False
        entry.done = True
        swallowed = bool(scope.__exit__(exc_type, exc, tb))
        if scope.cancelled_caught:
            self._exceeded(name, entry.timeout)
            raise DeadlineExceeded(_message(entry.timeout), timeout=entry.timeout) from None
        return swallowed

    async def __aenter__(self) -> Deadline:
        loop = _running_loop()
        if loop is None or not _UNCANCEL or self._clock is not _SYSTEM or _current.get():
            return self._enter_async(None, caller_frame(1))
        # The common case, inlined (it is the hot path): asyncio, the system clock, no
        # deadline in scope yet. The same steps as `_push` and `_enter_async`.
        seconds = self.seconds
        if seconds <= 0.0:
            return self._enter_async(None, caller_frame(1))
        entry = _new_scope(_Scope)
        entry.at = _monotonic() + seconds
        entry.clock = _SYSTEM
        entry.timeout = seconds
        entry.fired = False
        entry.scope = None
        entry.owner = self
        entry.frame = caller_frame(1)
        entry.outer = None
        entry.closed = False
        task: Any = current_task(loop)
        entry.task = task
        entry.cancelling = task.cancelling()
        backend = _modules.get(_ANYIO_ASYNCIO)
        if backend is None:
            entry.anyio_scope = None
        else:
            state = backend._task_states.data.get(_ref(task))
            entry.anyio_scope = None if state is None else state.cancel_scope
        # On the loop's shared timers (see `_Timers`) rather than a call_at of its own.
        timers = _last_timers
        if timers is None or timers.loop() is not loop:
            timers = _timers_of(loop)
        when = loop.time() + seconds  # type: ignore[union-attr]
        if timers is None:  # a loop that cannot be weakly referenced: a timer of its own
            entry.handle = loop.call_at(when, _fire_task, entry)  # type: ignore[union-attr]
        else:
            item = [when, next(_sequence), entry, timers]
            heappush(timers.heap, item)
            if when < timers.armed:
                timers.arm(when)
            entry.handle = item
        _current.set(entry)
        return entry

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        # This block's entry: the innermost deadline when blocks exit in order, else found
        # on this context's chain of deadlines (an exit out of order: interleaved generators).
        frame = caller_frame(1)
        entry: Any = _current.get()
        if (
            entry is None
            or entry.__class__ is not _Scope
            or entry.frame is not frame
            or entry.owner is not self
        ):
            return self._exit_async(_own_entry(self, frame), exc_type, exc, tb, None)
        if entry.handle is not None and entry.scope is None and not entry.fired:
            # The common case on asyncio: finished in time. Kept inline, it is the hot path.
            entry.closed = True
            outer = entry.outer
            if outer is not None and getattr(outer, "closed", False):
                outer = _open_outer(outer)
            _current.set(outer)
            handle = entry.handle
            if handle.__class__ is list:
                handle[3].clear(handle)
            else:
                handle.cancel()
            return False
        return self._exit_async(entry, exc_type, exc, tb, None)

    # -- calls ----------------------------------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` with the deadline in scope (cooperative; see the class)."""
        entry, _ = self._push(None)
        token = _current.set(entry)
        try:
            return (
                fn(*args, **kwargs) if not HUB.timing else HUB.timed(self, None, fn, args, kwargs)
            )
        finally:
            _current.reset(token)

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)``, cancelling it if the deadline passes."""
        if HUB.timing:
            return await HUB.atimed(self, None, self._run_async, (fn, args, kwargs, None), {})
        return await self._run_async(fn, args, kwargs, None)

    async def _run_async(
        self,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None,
    ) -> R:
        entry = self._enter_async(name)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            if self._exit_async(entry, type(exc), exc, exc.__traceback__, name):
                raise AssertionError("unreachable: a timeout never swallows") from exc
            raise
        self._exit_async(entry, None, None, None, name)
        return result

    def _wrap_sync(self, fn: Callable[P, R]) -> Callable[P, R]:
        name = self.name if self.name is not None else _name_of(fn)
        push = self._push
        set_, reset = _current.set, _current.reset

        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            token = set_(push(name)[0])
            try:
                return (
                    fn(*args, **kwargs)
                    if not HUB.timing
                    else HUB.timed(self, name, fn, args, kwargs)
                )
            finally:
                reset(token)

        return wrapper

    def _wrap_async(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        name = self.name if self.name is not None else _name_of(fn)
        run = self._run_async

        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if HUB.timing:
                return await HUB.atimed(self, name, run, (fn, args, kwargs, name), {})
            return await run(fn, args, kwargs, name)

        return wrapper


_SYSTEM: Clock = check_clock(None)

# Open sync ``with timeout(...)`` blocks.
_sync_entries: ScopeStack[_Scope] = ScopeStack("resilient.timeout")
_sync_frames = _sync_entries.frames
_sync_open = _sync_entries.open_entries


def _claim(owner: Timeout, frame: FrameType) -> _Scope:
    """The entry claimed by an exit of ``owner``'s sync block run from ``frame``."""
    return _sync_entries.pop(owner, frame, _open_deadlines)


def _leave(entry: _Scope) -> None:
    """Close ``entry``; if it is the deadline in scope, the nearest enclosing open one is."""
    entry.closed = True
    if _current.get() is entry:
        outer = entry.outer
        _current.set(
            outer if outer is None or not getattr(outer, "closed", False) else _open_outer(outer)
        )


def _open_outer(deadline: Deadline | None) -> Deadline | None:
    """``deadline``, or the nearest enclosing deadline of it still open."""
    while deadline is not None and getattr(deadline, "closed", False):
        deadline = deadline.outer  # type: ignore[attr-defined]
    return deadline


def _own_entry(owner: Timeout, frame: FrameType) -> _Scope:
    """The open entry of an ``async with owner`` block run from ``frame``, in this context.

    The innermost one made from ``frame``, else the innermost one of ``owner`` (a block entered
    and exited through a helper such as `contextlib.AsyncExitStack`, whose frames differ).

    Raises:
        RuntimeError: there is none on this context's chain of deadlines (an exit in another
            task than its entry, or more exits than entries).
    """
    fallback = None
    for deadline in _open_deadlines():
        if deadline.__class__ is _Scope and not deadline.closed and deadline.owner is owner:
            if deadline.frame is frame:
                return deadline
            if fallback is None:
                fallback = deadline
    if fallback is None:
        raise RuntimeError(f"{owner!r} exited without a matching enter in this task")
    return fallback


def _open_deadlines() -> Iterator[Deadline]:
    """The sync timeout entries of this context, innermost first (the ``outer`` chain)."""
    deadline = _current.get()
    while deadline is not None:
        yield deadline
        deadline = getattr(deadline, "outer", None)


def _name_of(fn: object) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) else repr(fn)


def _message(seconds: float | None) -> str:
    return "deadline exceeded" if seconds is None else f"deadline of {seconds:g}s exceeded"


def timeout(seconds: float, *, name: str | None = None, clock: Clock | None = None) -> Timeout:
    """Build a `Timeout` of ``seconds``: ``with``, ``async with``, decorator or Pipeline step.

    ```python
    import resilient


    @resilient.timeout(1.0)
    def lookup() -> float | None:
        return resilient.remaining()  # the deadline is in scope inside


    left = lookup()
    assert left is not None and 0.0 < left <= 1.0
    ```

    Takes the same arguments as `Timeout`; see there.
    """
    if type(seconds) is float and 0.0 <= seconds < math.inf and name is None and clock is None:
        self: Timeout = _new(
            Timeout
        )  # the common case, kept cheap: ``async with timeout(2.0)`` per call
        self.seconds = seconds
        self.name = None
        self._clock = _SYSTEM
        return self
    return Timeout(seconds, name=name, clock=clock)


_new = Timeout.__new__

# The Python ``__enter__`` / ``__exit__`` of sync blocks, and their C versions (the same steps;
# see `TimeoutHook` in _speedups.c), which replace them when the extension is built.
PYTHON_SYNC: tuple[Any, Any] = (Timeout.__dict__["__enter__"], Timeout.__dict__["__exit__"])
NATIVE_SYNC: tuple[Any, Any] | None = None
_speedups: Any = load_speedups()
_hook: Any = getattr(_speedups, "TimeoutHook", None)
if _hook is not None:
    NATIVE_SYNC = tuple(
        _hook(
            exit,
            _sync_frames,
            _sync_open,
            _current,
            _Scope,
            Timeout,
            _SYSTEM,
            _monotonic,
            _claim,
            _open_outer,
        )
        for exit in (False, True)
    )
    type.__setattr__(Timeout, "__enter__", NATIVE_SYNC[0])
    type.__setattr__(Timeout, "__exit__", NATIVE_SYNC[1])
