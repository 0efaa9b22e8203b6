"""A composite policy: timeout + retry + circuit breaker + bulkhead around one successful call.

resilient: ``Pipeline(Timeout(2.0), Retry(on=ConnectionError, attempts=3),
CircuitBreaker(...), Bulkhead(10))`` as a decorator, outermost first.

Peers, configured to do the same where they can:

- pyresilience: one ``@resilient(...)`` decorator with ``TimeoutConfig(seconds=2.0)``,
  ``RetryConfig(max_attempts=3, retry_on=(ConnectionError,))``, ``CircuitBreakerConfig()`` and
  ``BulkheadConfig(max_concurrent=10)``; it applies them in its own fixed order. Its async
  timeout cancels the awaited call, like ours. Its *sync* timeout runs the function in a
  thread pool, which resilient's cooperative sync timeout does not do, so the sync rows leave
  the timeout out for both libraries (retry + breaker + bulkhead).
- hyx (async only): its decorators stacked in the same order, ``@timeout(2.0)``,
  ``@retry(on=ConnectionError, attempts=3)``, ``@consecutive_breaker()``,
  ``@bulkhead(max_concurrency=10, max_capacity=10)``. Its timeout binds to the running event
  loop when it decorates, so the stack is built on the first call, inside the loop, and called
  through one more coroutine (a few tens of ns, small beside the row).

The wrapped function returns at once; a composite's cost is its row less the bare call.

Target: the async composite adds at most 0.3x what pyresilience's adds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import resilient
from resilient import Bulkhead, CircuitBreaker, Pipeline, Retry, Timeout

from ._harness import Report, compare, compare_async, subtract_baseline


def work() -> int:
    return 1


async def awork() -> int:
    return 1


def _ours(name: str, *, timeout: bool = True) -> Pipeline:
    policies: list[resilient.Timeout | Retry | CircuitBreaker | Bulkhead] = []
    if timeout:
        policies.append(Timeout(2.0))
    policies += [Retry(on=ConnectionError, attempts=3), CircuitBreaker(name), Bulkhead(10)]
    return Pipeline(*policies)


def _pyresilience(fn: Callable[[], object], *, timeout: bool = True) -> Callable[[], object]:
    import pyresilience

    options: dict[str, object] = {
        "retry": pyresilience.RetryConfig(max_attempts=3, retry_on=(ConnectionError,)),
        "circuit_breaker": pyresilience.CircuitBreakerConfig(),
        "bulkhead": pyresilience.BulkheadConfig(max_concurrent=10),
    }
    if timeout:
        options["timeout"] = pyresilience.TimeoutConfig(seconds=2.0)
    return pyresilience.resilient(**options)(fn)  # type: ignore[arg-type, no-any-return]


def _hyx(fn: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
    from hyx.bulkhead import bulkhead
    from hyx.circuitbreaker import consecutive_breaker
    from hyx.retry import retry
    from hyx.timeout import timeout

    built: list[Callable[[], Awaitable[object]]] = []

    async def call() -> object:
        # hyx's timeout binds to the running loop when it decorates: build inside the loop.
        if not built:
            wrapped = bulkhead(max_concurrency=10, max_capacity=10)(fn)
            wrapped = consecutive_breaker()(wrapped)
            wrapped = retry(on=ConnectionError, attempts=3)(wrapped)
            built.append(timeout(2.0)(wrapped))
        return await built[0]()

    return call


def run(report: Report) -> None:
    candidates: dict[str, Callable[[], Awaitable[object]]] = {
        "bare await": awork,
        "resilient Pipeline(Timeout, Retry, CircuitBreaker, Bulkhead)": _ours("composite")(awork),
    }
    try:
        candidates["pyresilience @resilient(timeout, retry, circuit_breaker, bulkhead)"] = (
            _pyresilience(awork)  # type: ignore[dict-item]
        )
    except ImportError:
        print("  pyresilience is not installed: its rows are skipped", flush=True)
    try:
        candidates["hyx timeout + retry + consecutive_breaker + bulkhead"] = _hyx(awork)
    except ImportError:
        print("  hyx is not installed: its rows are skipped", flush=True)
    times = compare_async(candidates)
    group = "composite: timeout + retry + breaker + bulkhead, success (asyncio)"
    for name, timing in times.items():
        report.add(group, name, timing, baseline=name == "bare await")
    bare = times["bare await"]
    ours = subtract_baseline(times[next(n for n in times if n.startswith("resilient"))], bare)
    theirs = next((n for n in times if n.startswith("pyresilience")), None)
    if theirs is not None:
        report.target(
            "composite pipeline (asyncio): added cost vs pyresilience",
            ours,
            subtract_baseline(times[theirs], bare),
            at_most=0.3,
            peer="pyresilience",
        )
    hyx_name = next((n for n in times if n.startswith("hyx")), None)
    if hyx_name is not None:
        report.target(
            "composite pipeline (asyncio): added cost vs hyx",
            ours,
            subtract_baseline(times[hyx_name], bare),
            at_most=1.0,
            peer="hyx",
            headline=False,
        )

    trio_times = compare_async(
        {
            "bare await": awork,
            "resilient Pipeline(Timeout, Retry, CircuitBreaker, Bulkhead)": _ours("composite-trio")(
                awork
            ),
        },
        "trio",
    )
    group = "composite: timeout + retry + breaker + bulkhead, success (trio)"
    for name, timing in trio_times.items():
        report.add(group, name, timing, baseline=name == "bare await")

    sync: dict[str, Callable[[], object]] = {
        "bare call": work,
        "resilient Pipeline(Retry, CircuitBreaker, Bulkhead)": _ours(
            "composite-sync", timeout=False
        )(work),
        "resilient Pipeline(Timeout, Retry, CircuitBreaker, Bulkhead)": _ours(
            "composite-sync-timeout"
        )(work),
    }
    try:
        sync["pyresilience @resilient(retry, circuit_breaker, bulkhead)"] = _pyresilience(
            work, timeout=False
        )
        sync["pyresilience @resilient(timeout, ...): a thread pool per call"] = _pyresilience(work)
    except ImportError:
        pass
    sync_times = compare(sync)
    group = "composite, success (sync)"
    for name, timing in sync_times.items():
        report.add(group, name, timing, baseline=name == "bare call")
    theirs = "pyresilience @resilient(retry, circuit_breaker, bulkhead)"
    if theirs in sync_times:
        report.target(
            "composite pipeline (sync, no timeout): added cost vs pyresilience",
            subtract_baseline(
                sync_times["resilient Pipeline(Retry, CircuitBreaker, Bulkhead)"],
                sync_times["bare call"],
            ),
            subtract_baseline(sync_times[theirs], sync_times["bare call"]),
            at_most=0.3,
            peer="pyresilience",
            headline=False,
        )
