"""Retry and timeout overhead on the success path, against tenacity, backoff and asyncio.timeout.

Every wrapped function succeeds at once, so what is measured is what a healthy call pays for
being wrapped. Overheads are the wrapped call less the bare call, measured in the same run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import backoff as backoff_lib
import stamina
import tenacity

import resilient

from ._harness import Report, measure, measure_async, subtract_baseline


def work() -> int:
    return 1


async def awork() -> int:
    return 1


def run(report: Report) -> None:
    _sync(report)
    _instrumented(report)
    _async(report)
    _timeouts(report)


def _decorated(fn: Any) -> tuple[Any, Any, Any, Any]:
    """``fn`` under each library's retry, with the same settings: 3 attempts on ConnectionError."""
    ours = resilient.retry(on=ConnectionError, attempts=3)(fn)
    ten = tenacity.retry(
        retry=tenacity.retry_if_exception_type(ConnectionError),
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_random_exponential(multiplier=0.1, max=10),
    )(fn)
    bo = backoff_lib.on_exception(backoff_lib.expo, ConnectionError, max_tries=3)(fn)
    st = stamina.retry(on=ConnectionError, attempts=3)(fn)
    return ours, ten, bo, st


def _sync(report: Report) -> None:
    ours, ten, bo, st = _decorated(work)

    group = "retry, success path (sync)"
    bare = report.add(group, "bare call", measure(work), baseline=True)
    mine = report.add(group, "resilient @retry", measure(ours))
    theirs = report.add(group, "tenacity @retry", measure(ten))
    theirs_bo = report.add(group, "backoff @on_exception", measure(bo))
    report.add(group, "stamina @retry", measure(st))
    _checks(report, "sync", bare, mine, theirs, theirs_bo, limit=0.3e-6)


def _instrumented(report: Report) -> None:
    """The success path with nobody listening, with a plain subscriber, with PrometheusMetrics."""
    from prometheus_client import CollectorRegistry

    from resilient import instrumentation
    from resilient.instrumentation.prometheus import PrometheusMetrics

    ours = resilient.retry(on=ConnectionError, attempts=3)(work)
    group = "retry, success path: instrumentation (sync)"
    report.add(group, "bare call", measure(work))
    idle = report.add(group, "resilient @retry, no subscriber", measure(ours), baseline=True)
    seen: list[object] = []
    instrumentation.subscribe(seen.append)  # asks for no CallCompleted: nothing to emit
    try:
        report.add(group, "resilient @retry, a plain subscriber", measure(ours))
    finally:
        instrumentation.unsubscribe(seen.append)
    metrics = PrometheusMetrics(registry=CollectorRegistry())
    try:
        exported = report.add(group, "resilient @retry, PrometheusMetrics", measure(ours))
    finally:
        metrics.close()
    report.check(
        "@retry with PrometheusMetrics costs < 2x the uninstrumented call",
        exported < 2 * idle,
        f"{exported / idle:.1f}x ({exported * 1e9:.0f} ns vs {idle * 1e9:.0f} ns)",
    )


def _async(report: Report) -> None:
    ours, ten, bo, st = _decorated(awork)

    group = "retry, success path (asyncio)"
    bare = report.add(group, "bare await", measure_async(awork), baseline=True)
    mine = report.add(group, "resilient @retry", measure_async(ours))
    theirs = report.add(group, "tenacity @retry", measure_async(ten))
    theirs_bo = report.add(group, "backoff @on_exception", measure_async(bo))
    report.add(group, "stamina @retry", measure_async(st))
    _checks(report, "async", bare, mine, theirs, theirs_bo, limit=0.6e-6)

    group = "retry, success path (trio)"
    bare = report.add(group, "bare await", measure_async(awork, "trio"), baseline=True)
    report.add(group, "resilient @retry", measure_async(ours, "trio"))


def _checks(
    report: Report,
    flavour: str,
    bare: float,
    mine: float,
    tenacity_seconds: float,
    backoff_seconds: float,
    *,
    limit: float,
) -> None:
    added = subtract_baseline(mine, bare)
    added_tenacity = subtract_baseline(tenacity_seconds, bare)
    added_backoff = subtract_baseline(backoff_seconds, bare)
    report.check(
        f"@retry adds <= {limit * 1e6:.1f} us per successful {flavour} call",
        added <= limit,
        f"{added * 1e9:.0f} ns",
    )
    report.check(
        f"@retry adds >= 20x less than tenacity ({flavour})",
        added * 20 <= added_tenacity,
        f"{added * 1e9:.0f} ns vs {added_tenacity * 1e9:.0f} ns",
    )
    report.check(
        f"@retry adds less than backoff ({flavour})",
        added < added_backoff,
        f"{added * 1e9:.0f} ns vs {added_backoff * 1e9:.0f} ns",
    )


def _timeouts(report: Report) -> None:
    async def with_asyncio_timeout() -> int:
        async with asyncio.timeout(2.0):
            return await awork()

    async def with_timeout() -> int:
        async with resilient.timeout(2.0):
            return await awork()

    shared = resilient.timeout(2.0)

    async def with_shared_timeout() -> int:
        async with shared:
            return await awork()

    async def with_anyio_scope() -> int:
        import anyio

        with anyio.fail_after(2.0):
            return await awork()

    group = "async with timeout (asyncio)"
    bare = report.add(group, "bare await", measure_async(awork), baseline=True)
    theirs = report.add(group, "asyncio.timeout(2.0)", measure_async(with_asyncio_timeout))
    mine = report.add(group, "resilient.timeout(2.0)", measure_async(with_timeout))
    report.add(group, "resilient.Timeout shared", measure_async(with_shared_timeout))
    report.add(group, "anyio.fail_after(2.0)", measure_async(with_anyio_scope))
    report.check(
        "async with timeout() costs no more than asyncio.timeout",
        subtract_baseline(mine, bare) <= subtract_baseline(theirs, bare),
        f"{subtract_baseline(mine, bare) * 1e9:.0f} ns vs "
        f"{subtract_baseline(theirs, bare) * 1e9:.0f} ns",
    )
    report.check(
        "async with timeout() <= 0.7x asyncio.timeout (cost over the bare await)",
        subtract_baseline(mine, bare) <= 0.7 * subtract_baseline(theirs, bare),
        f"{subtract_baseline(mine, bare) / max(subtract_baseline(theirs, bare), 1e-12):.2f}x",
    )

    group = "async with timeout (trio)"
    report.add(group, "bare await", measure_async(awork, "trio"), baseline=True)
    report.add(group, "resilient.timeout(2.0)", measure_async(with_timeout, "trio"))
    report.add(group, "anyio.fail_after(2.0)", measure_async(with_anyio_scope, "trio"))
