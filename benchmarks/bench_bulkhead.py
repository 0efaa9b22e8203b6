"""Bulkhead: the cost of acquiring and releasing a free slot in async code.

Peers: ``asyncio.Semaphore`` and ``anyio.CapacityLimiter``, each used as ``async with``.
Targets: at most 1.5x asyncio.Semaphore and at least 5x faster than anyio.CapacityLimiter.
"""

from __future__ import annotations

import asyncio

import anyio

from resilient import AdaptiveBulkhead, Bulkhead

from ._harness import Report, measure, measure_async

GROUP = "bulkhead: async acquire + release"
SYNC_GROUP = "bulkhead: sync acquire + release"


def run(report: Report) -> None:
    bulkhead = Bulkhead(10)
    adaptive = AdaptiveBulkhead(initial=10)
    semaphore: list[asyncio.Semaphore] = []
    limiter: list[anyio.CapacityLimiter] = []

    async def ours() -> None:
        async with bulkhead:
            pass

    async def ours_adaptive() -> None:
        async with adaptive:
            pass

    async def with_semaphore() -> None:
        if not semaphore:
            semaphore.append(asyncio.Semaphore(10))  # bound to the benchmark's loop
        async with semaphore[0]:
            pass

    async def with_limiter() -> None:
        if not limiter:
            limiter.append(anyio.CapacityLimiter(10))
        async with limiter[0]:
            pass

    sem = report.add(GROUP, "asyncio.Semaphore", measure_async(with_semaphore), baseline=True)
    seconds = report.add(GROUP, "resilient Bulkhead (asyncio)", measure_async(ours))
    report.add(GROUP, "resilient Bulkhead (trio)", measure_async(ours, backend="trio"))
    report.add(GROUP, "resilient AdaptiveBulkhead (asyncio)", measure_async(ours_adaptive))
    cap = report.add(GROUP, "anyio.CapacityLimiter", measure_async(with_limiter))

    def sync() -> None:
        with bulkhead:
            pass

    report.add(SYNC_GROUP, "resilient Bulkhead", measure(sync), baseline=True)

    report.check(
        "bulkhead: async acquire+release <= 1.5x asyncio.Semaphore",
        seconds <= 1.5 * sem,
        f"{seconds / sem:.2f}x",
    )
    report.check(
        "bulkhead: async acquire+release <= 1.0x asyncio.Semaphore",
        seconds <= sem,
        f"{seconds / sem:.2f}x",
    )
    report.check(
        "bulkhead: >= 5x faster than anyio.CapacityLimiter",
        seconds * 5 <= cap,
        f"{cap / seconds:.1f}x",
    )
