"""Async timeouts: what ``async with timeout(2.0)`` costs around an await that finishes in time.

On asyncio: ``resilient.timeout`` (a new one per call, and one ``Timeout`` object shared by
every call) against ``asyncio.timeout`` and ``anyio.fail_after``. On trio: against
``trio.fail_after`` and ``anyio.fail_after``. Every candidate is an ``async def`` that enters the
timeout and awaits a coroutine that returns at once; the cost of a timeout is the row less the
bare await of the same run.

Target: ``resilient.timeout`` adds at most 0.7x what ``asyncio.timeout`` adds.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import anyio

import resilient

from ._harness import Report, compare_async, subtract_baseline


async def awork() -> int:
    return 1


async def with_timeout() -> int:
    async with resilient.timeout(2.0):
        return await awork()


SHARED = resilient.timeout(2.0)


async def with_shared_timeout() -> int:
    async with SHARED:
        return await awork()


async def with_anyio() -> int:
    with anyio.fail_after(2.0):
        return await awork()


async def with_asyncio_timeout() -> int:
    async with asyncio.timeout(2.0):  # type: ignore[attr-defined]
        return await awork()


async def with_trio() -> int:
    import trio

    with trio.fail_after(2.0):
        return await awork()


def run(report: Report) -> None:
    group = "async with timeout(2.0) (asyncio)"
    candidates: dict[str, Callable[[], Awaitable[object]]] = {
        "bare await": awork,
        "resilient.timeout(2.0)": with_timeout,
        "resilient Timeout, one object shared": with_shared_timeout,
        "anyio.fail_after(2.0)": with_anyio,
    }
    if sys.version_info >= (3, 11):
        candidates["asyncio.timeout(2.0)"] = with_asyncio_timeout
    times = compare_async(candidates)
    for name, timing in times.items():
        report.add(group, name, timing, baseline=name == "bare await")
    bare = times["bare await"]
    if "asyncio.timeout(2.0)" in times:
        report.target(
            "async timeout (asyncio): added cost vs asyncio.timeout",
            subtract_baseline(times["resilient.timeout(2.0)"], bare),
            subtract_baseline(times["asyncio.timeout(2.0)"], bare),
            at_most=0.7,
            peer="asyncio.timeout",
        )
    report.target(
        "async timeout (asyncio): added cost vs anyio.fail_after",
        subtract_baseline(times["resilient.timeout(2.0)"], bare),
        subtract_baseline(times["anyio.fail_after(2.0)"], bare),
        at_most=1.0,
        peer="anyio.fail_after",
        headline=False,
    )

    group = "async with timeout(2.0) (trio)"
    times = compare_async(
        {
            "bare await": awork,
            "resilient.timeout(2.0)": with_timeout,
            "resilient Timeout, one object shared": with_shared_timeout,
            "trio.fail_after(2.0)": with_trio,
            "anyio.fail_after(2.0)": with_anyio,
        },
        "trio",
    )
    for name, timing in times.items():
        report.add(group, name, timing, baseline=name == "bare await")
    bare = times["bare await"]
    report.target(
        "async timeout (trio): added cost vs trio.fail_after",
        subtract_baseline(times["resilient.timeout(2.0)"], bare),
        subtract_baseline(times["trio.fail_after(2.0)"], bare),
        at_most=1.0,
        peer="trio.fail_after",
        headline=False,
    )
