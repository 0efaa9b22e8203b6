"""The deadline in scope: an absolute time on a monotonic clock, held in a ContextVar.

A deadline is entered by `resilient.timeout` (or by `DeadlineMiddleware` for an incoming
request) and read by everything below it: retries stop before sleeping past it, bulkheads and
rate limiters do not wait past it, and the httpx transport shrinks its timeouts to it and sends
the time left downstream. Nested deadlines never extend each other: the earliest wins.

The deadline remembers its clock, so a deadline set with a `FakeClock` is read with that clock.
"""

from __future__ import annotations

import math
import sys
from asyncio import CancelledError
from contextvars import ContextVar, Token

from ._clock import SYSTEM_CLOCK, Clock


def reaches(time: float, limit: float, reading: float) -> bool:
    """Whether ``time`` is at or after ``limit``, both derived from readings like ``reading``.

    Clock readings are doubles, so sums of readings and durations are off by a few units in the
    last place of the reading: at a reading of 1e12 one unit is 122 µs, and three sleeps of
    0.1 s may end a unit short of "start + 0.3". Times that close count as equal (plus one
    nanosecond, below any real clock's resolution), so that a comparison gives the same answer
    at every clock reading.
    """
    return time >= limit - (1e-9 + 4.0 * math.ulp(reading))


__all__ = [
    "Deadline",
    "current_deadline",
    "deadline_passed",
    "enter_deadline",
    "is_cancellation",
    "reaches",
    "remaining",
]


class Deadline:
    """An absolute point in time on ``clock``.

    Attributes:
        at: the deadline, in ``clock.monotonic()`` seconds.
        clock: the clock the deadline is measured on.
        timeout: the length of the timeout that set it, in seconds.
    """

    __slots__ = ("at", "clock", "timeout")

    def __init__(self, at: float, clock: Clock = SYSTEM_CLOCK, timeout: float | None = None):
        self.at = at
        self.clock = clock
        self.timeout = timeout

    def remaining(self) -> float:
        """Seconds left until the deadline; negative once it has passed."""
        return self.at - self.clock.monotonic()

    def expired(self) -> bool:
        """Whether the deadline has passed (see `reaches` for how "at" is compared)."""
        now = self.clock.monotonic()
        return reaches(now, self.at, self.at)

    def reached_after(self, seconds: float) -> bool:
        """Whether something starting ``seconds`` from now would start at or after the deadline."""
        now = self.clock.monotonic()
        return reaches(now + seconds, self.at, self.at)

    def passed(self) -> bool:
        """Whether the deadline has passed, or its timer has already cancelled the work."""
        return self.clock.monotonic() >= self.at

    def __repr__(self) -> str:
        return f"Deadline(at={self.at!r}, clock={self.clock!r})"


_current: ContextVar[Deadline | None] = ContextVar("resilient.deadline", default=None)
get_deadline = _current.get


def enter_deadline(
    seconds: float, clock: Clock = SYSTEM_CLOCK
) -> tuple[Deadline, Token[Deadline | None]]:
    """Scope a deadline ``seconds`` from now, unless an earlier one is already in scope.

    Returns the deadline now in force (the new one or the earlier outer one) and the token to
    hand to `exit_deadline`.
    """
    new = Deadline(clock.monotonic() + seconds, clock, seconds)
    outer = _current.get()
    if outer is not None and outer.remaining() <= seconds:
        new = outer
    return new, _current.set(new)


def enter_absolute(deadline: Deadline) -> tuple[Deadline, Token[Deadline | None]]:
    """Scope ``deadline`` unless an earlier one is in scope; see `enter_deadline`."""
    outer = _current.get()
    if outer is not None and outer.remaining() <= deadline.remaining():
        deadline = outer
    return deadline, _current.set(deadline)


def exit_deadline(token: Token[Deadline | None]) -> None:
    """Restore the deadline that was in scope before the matching enter call."""
    _current.reset(token)


def is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is the cancellation exception of asyncio (and anyio on it) or trio."""
    if isinstance(exc, CancelledError):
        return True
    trio = sys.modules.get("trio")
    return trio is not None and isinstance(exc, trio.Cancelled)


def deadline_passed() -> bool:
    """Whether the deadline in scope has passed (or fired): then a cancellation is a timeout.

    A policy that sees its call cancelled asks this to tell a call cancelled because its
    deadline expired (a timeout of the dependency) from one cancelled for any other reason.
    """
    deadline = _current.get()
    return deadline is not None and deadline.passed()


def current_deadline() -> float | None:
    """The absolute deadline in scope, in seconds of its clock's ``monotonic()``, or None.

    With the default clock this is comparable with `time.monotonic()`.
    """
    deadline = _current.get()
    return None if deadline is None else deadline.at


def remaining() -> float | None:
    """Seconds left until the nearest deadline in scope (never below 0.0), or None."""
    deadline = _current.get()
    if deadline is None:
        return None
    left = deadline.remaining()
    return left if left > 0.0 else 0.0
