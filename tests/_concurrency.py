"""Drive a policy from many threads or tasks at once, counting what it admits."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import anyio


def hammer_in_threads(count: int, hammer: Callable[[threading.Barrier], object]) -> None:
    """Run ``hammer(start)`` in ``count`` threads, switching between threads as often as possible.

    Each thread is given the same barrier (``start``) to wait on, so that they begin together.
    """
    start = threading.Barrier(count)
    threads = [threading.Thread(target=hammer, args=(start,)) for _ in range(count)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: their steps interleave
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)


def admitted_by_threads(
    limiter: Any, threads: int = 8, calls: int = 500, key: str = "shared"
) -> int:
    """How many of ``threads`` x ``calls`` concurrent ``try_acquire(key)`` were allowed."""
    barrier = threading.Barrier(threads)
    allowed = [0] * threads

    def hammer(index: int) -> None:
        barrier.wait()
        for _ in range(calls):
            if limiter.try_acquire(key).allowed:
                allowed[index] += 1

    workers = [threading.Thread(target=hammer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return sum(allowed)


async def admitted_by_tasks(limiter: Any, tasks: int = 500) -> int:
    """How many of ``tasks`` concurrent ``atry_acquire("shared")`` were allowed."""
    allowed = 0

    async def one() -> None:
        nonlocal allowed
        await anyio.sleep(0)  # let every task start before any decides
        if (await limiter.atry_acquire("shared")).allowed:
            allowed += 1

    async with anyio.create_task_group() as group:
        for _ in range(tasks):
            group.start_soon(one)
    return allowed
