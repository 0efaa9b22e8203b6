"""Clocks: where every policy reads the time and sleeps.

Policies never call `time.monotonic`, `time.sleep` or an event loop's sleep directly; they go
through a `Clock`, so tests can swap in `resilient.testing.FakeClock` and nothing really waits.
Async sleeps go through anyio, so they work on asyncio and trio alike.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import anyio

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "switches"]


@runtime_checkable
class Clock(Protocol):
    """What a policy needs of time: a monotonic reading and two ways to sleep."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; only differences are meaningful."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the current thread for ``seconds``."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend the current task for ``seconds`` (asyncio or trio)."""
        ...


class SystemClock:
    """The real clock: `time.monotonic`, `time.sleep` and `anyio.sleep`."""

    __slots__ = ()

    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    async def asleep(self, seconds: float) -> None:
        """Suspend the current task for ``seconds`` on whichever async backend is running."""
        await anyio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Clock = SystemClock()


class _Switches:
    """Process-wide testing switches (see `resilient.testing.no_waiting`).

    A plain object rather than a ContextVar: the switch must also reach worker threads.
    """

    __slots__ = ("no_waiting",)

    def __init__(self) -> None:
        self.no_waiting = 0


switches = _Switches()


def check_clock(clock: object, argument: str = "clock") -> Clock:
    """Return ``clock`` (or the system clock for None), or raise TypeError naming ``argument``."""
    if clock is None:
        return SYSTEM_CLOCK
    if not isinstance(clock, Clock):
        raise TypeError(f"{argument} must provide monotonic(), sleep() and asleep(), got {clock!r}")
    return clock
