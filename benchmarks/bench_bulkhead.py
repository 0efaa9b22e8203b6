"""Bulkhead: the cost of acquiring and releasing a free slot, sync and async.

Sync: ``with bulkhead:`` against ``with threading.BoundedSemaphore(10):`` and
``threading.Semaphore``. Async, on asyncio: ``async with bulkhead:`` against
``asyncio.Semaphore`` and ``anyio.CapacityLimiter``; on trio: against ``trio.Semaphore`` and
``anyio.CapacityLimiter``. Every candidate guards an await (or a call) of a function that
returns at once; a row less the bare call of the same run is the guard's cost.

Target: the async bulkhead adds at most what ``asyncio.Semaphore`` adds (1.0x).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import anyio

from resilient import AdaptiveBulkhead, Bulkhead

from ._harness import Report, compare, compare_async, subtract_baseline


def work() -> int:
    return 1


async def awork() -> int:
    return 1


def _sync_guard(guard: object) -> Callable[[], int]:
    def call() -> int:
        with guard:  # type: ignore[attr-defined]
            return work()

    return call


def _async_guard(make: Callable[[], object]) -> Callable[[], Awaitable[int]]:
    """An ``async with`` of the guard ``make()`` builds on first use (inside the event loop)."""
    made: list[object] = []

    async def call() -> int:
        if not made:
            made.append(make())
        async with made[0]:  # type: ignore[attr-defined]
            return await awork()

    return call


def run(report: Report) -> None:
    group = "bulkhead: acquire + release (sync)"
    times = compare(
        {
            "bare call": work,
            "resilient Bulkhead": _sync_guard(Bulkhead(10)),
            "threading.BoundedSemaphore": _sync_guard(threading.BoundedSemaphore(10)),
            "threading.Semaphore": _sync_guard(threading.Semaphore(10)),
        }
    )
    for name, timing in times.items():
        report.add(group, name, timing, baseline=name == "bare call")
    bare = times["bare call"]
    report.target(
        "bulkhead (sync): added cost vs threading.BoundedSemaphore",
        subtract_baseline(times["resilient Bulkhead"], bare),
        subtract_baseline(times["threading.BoundedSemaphore"], bare),
        at_most=1.0,
        peer="threading.BoundedSemaphore",
        headline=False,
    )

    group = "bulkhead: acquire + release (asyncio)"
    times = compare_async(
        {
            "bare await": awork,
            "resilient Bulkhead": _async_guard(lambda: Bulkhead(10)),
            "resilient AdaptiveBulkhead": _async_guard(lambda: AdaptiveBulkhead(initial=10)),
            "asyncio.Semaphore": _async_guard(lambda: asyncio.Semaphore(10)),
            "anyio.CapacityLimiter": _async_guard(lambda: anyio.CapacityLimiter(10)),
        }
    )
    for name, timing in times.items():
        report.add(group, name, timing, baseline=name == "bare await")
    bare = times["bare await"]
    ours = subtract_baseline(times["resilient Bulkhead"], bare)
    report.target(
        "bulkhead (asyncio): added cost vs asyncio.Semaphore",
        ours,
        subtract_baseline(times["asyncio.Semaphore"], bare),
        at_most=1.0,
        peer="asyncio.Semaphore",
    )
    report.target(
        "bulkhead (asyncio): added cost vs anyio.CapacityLimiter",
        ours,
        subtract_baseline(times["anyio.CapacityLimiter"], bare),
        at_most=0.2,
        peer="anyio.CapacityLimiter",
        headline=False,
    )

    import trio

    group = "bulkhead: acquire + release (trio)"
    times = compare_async(
        {
            "bare await": awork,
            "resilient Bulkhead": _async_guard(lambda: Bulkhead(10)),
            "trio.Semaphore": _async_guard(lambda: trio.Semaphore(10)),
            "trio.CapacityLimiter": _async_guard(lambda: trio.CapacityLimiter(10)),
            "anyio.CapacityLimiter": _async_guard(lambda: anyio.CapacityLimiter(10)),
        },
        "trio",
    )
    for name, timing in times.items():
        report.add(group, name, timing, baseline=name == "bare await")
