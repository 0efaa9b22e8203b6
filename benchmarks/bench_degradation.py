"""Fallback and dead-letter capture on the success path: what a healthy call pays for them.

- ``Fallback`` against ``@retry``, both as decorators on a function that succeeds at once: the
  fallback must cost no more than the retry.
- ``DeadLetterQueue.capture`` against the bare call and against the cheapest possible wrapper
  (one function that calls the next): capture must add no more than that one function call.

The candidates of a group are measured in turns (`compare`), each row the median of its rounds,
so a slow spell of a shared machine lands on all of them alike; a margin of 10 ns per call
absorbs the noise that remains.
"""

from __future__ import annotations

from typing import Any

import resilient
from resilient.stores import MemoryStore

from ._harness import Report, Timing, compare, compare_async, subtract_baseline

NOISE = 10e-9


def work(x: int = 1) -> int:
    return x


async def awork(x: int = 1) -> int:
    return x


def one_call(fn: Any) -> Any:
    """The cheapest wrapper there is: one more function call."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def interleaved(candidates: dict[str, Any], flavour: str = "sync") -> dict[str, Timing]:
    """Seconds per call of each candidate, taken in turns."""
    return compare(candidates) if flavour == "sync" else compare_async(candidates)


def run(report: Report) -> None:
    _fallback(report)
    _capture(report)


def _fallback(report: Report) -> None:
    group = "fallback vs retry, success path (sync)"
    retried = resilient.retry(on=ConnectionError, attempts=3)(work)
    fallback = resilient.Fallback(value=0)(work)
    times = interleaved({"bare": work, "retry": retried, "fallback": fallback})
    bare = report.add(group, "bare call", times["bare"], baseline=True)
    retry_seconds = report.add(group, "resilient @retry", times["retry"])
    fallback_seconds = report.add(group, "resilient @Fallback", times["fallback"])
    _check(report, "sync", bare, fallback_seconds, retry_seconds)

    group = "fallback vs retry, success path (asyncio)"
    aretried = resilient.retry(on=ConnectionError, attempts=3)(awork)
    afallback = resilient.Fallback(value=0)(awork)
    times = interleaved({"bare": awork, "retry": aretried, "fallback": afallback}, "async")
    bare = report.add(group, "bare await", times["bare"], baseline=True)
    retry_seconds = report.add(group, "resilient @retry", times["retry"])
    fallback_seconds = report.add(group, "resilient @Fallback", times["fallback"])
    _check(report, "asyncio", bare, fallback_seconds, retry_seconds)


def _check(report: Report, flavour: str, bare: float, fallback: float, retried: float) -> None:
    added = subtract_baseline(fallback, bare)
    added_retry = subtract_baseline(retried, bare)
    report.check(
        f"@Fallback adds no more than @retry per successful {flavour} call",
        added <= added_retry + NOISE,
        f"{added * 1e9:.0f} ns vs {added_retry * 1e9:.0f} ns",
    )


def _capture(report: Report) -> None:
    dlq = resilient.DeadLetterQueue("bench", store=MemoryStore())
    group = "dead-letter capture, success path (sync)"
    times = interleaved({"bare": work, "one": one_call(work), "capture": dlq.capture()(work)})
    bare = report.add(group, "bare call", times["bare"], baseline=True)
    wrapped = report.add(group, "one wrapper function", times["one"])
    captured = report.add(group, "DeadLetterQueue.capture", times["capture"])
    added = subtract_baseline(captured, bare)
    added_wrapper = subtract_baseline(wrapped, bare)
    report.check(
        "capture adds at most one function call (sync)",
        added <= added_wrapper + NOISE,
        f"{added * 1e9:.0f} ns vs {added_wrapper * 1e9:.0f} ns",
    )

    async def aone(*args: Any, **kwargs: Any) -> Any:  # one more coroutine, as any decorator
        return await awork(*args, **kwargs)

    group = "dead-letter capture, success path (asyncio)"
    times = interleaved({"bare": awork, "one": aone, "capture": dlq.capture()(awork)}, "async")
    bare = report.add(group, "bare await", times["bare"], baseline=True)
    wrapped = report.add(group, "one wrapper coroutine", times["one"])
    captured = report.add(group, "DeadLetterQueue.capture", times["capture"])
    added = subtract_baseline(captured, bare)
    added_wrapper = subtract_baseline(wrapped, bare)
    report.check(
        "capture adds at most one coroutine call (asyncio)",
        added <= added_wrapper + NOISE,
        f"{added * 1e9:.0f} ns vs {added_wrapper * 1e9:.0f} ns",
    )
