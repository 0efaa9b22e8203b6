"""Circuit breakers: the closed success path, the open-path rejection, and a breaker in Redis.

Peers, each as its documented decorator with default settings unless said:

- circuitbreaker (fabfuel) ``@circuit``; pybreaker ``CircuitBreaker()``; aiobreaker
  ``CircuitBreaker()`` (a decorator for sync and async functions); purgatory
  ``SyncCircuitBreakerFactory()`` / ``AsyncCircuitBreakerFactory()`` with its in-memory unit of
  work, decorating with ``@factory("name")``.
- Closed: the wrapped function succeeds; the cost is the row less the bare call of the run.
- Open: every breaker was tripped by one failure and stays open for a very long time
  (resilient ``consecutive_failures=1``, pybreaker ``fail_max=1``, circuitbreaker
  ``failure_threshold=1``, aiobreaker ``fail_max=1``, purgatory ``threshold=1``); each call is
  rejected with the library's exception, caught by the benchmark. The reference row raises and
  catches an exception by hand, the floor of any rejection that raises.
- Instrumentation (sync, closed): nobody listening, a plain subscriber, and each exporter
  subscribed in turn: ``PrometheusMetrics`` with its duration histogram (the default) and with
  ``durations=False``, ``OpenTelemetryInstrumentation`` on the SDK with and without durations
  (see ``_exporters.py``).
- Redis: ``CircuitBreaker(store=RedisStore(...))``, acquire and record in two script calls;
  with the opt-in ``RedisStore(breaker_staleness=0.05)`` a CLOSED reply is trusted for 50 ms,
  so a steady stream of calls costs one script call each (the record). Both against a PING
  round trip and pybreaker's ``CircuitRedisStorage``, one connection each, in turns call by
  call (medians).

Targets: the closed success path adds at most 0.8x what circuitbreaker adds; with
PrometheusMetrics, less than twice the uninstrumented call (durations on, the default; and,
reported apart, ``durations=False``); the shared Redis breaker's closed path at most 1.5x a
PING round trip, for the default store (two round trips, so out of reach) and for
``breaker_staleness=0.05`` (one round trip).
"""

from __future__ import annotations

import contextlib
import datetime
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiobreaker
import circuitbreaker
import purgatory
import pybreaker

from resilient import CircuitBreaker, CountWindow, TimeWindow

from ._exporters import exporter_rows, exporter_targets
from ._harness import Report, compare, compare_async, compare_paired, subtract_baseline

ROOT = Path(__file__).resolve().parent.parent
GROUP = "circuit breaker: closed, success (sync)"
FOREVER = 10**7  # seconds: an open breaker stays open for the whole run


def work() -> int:
    return 1


async def awork() -> int:
    return 1


def fail() -> int:
    raise ConnectionError("down")


async def afail() -> int:
    raise ConnectionError("down")


def run(report: Report) -> None:
    _closed(report)
    _closed_async(report)
    _open(report)
    _instrumented(report)
    _redis(report)


def _closed(report: Report) -> None:
    breaker = CircuitBreaker("bench-call")
    purgatory_factory = purgatory.SyncCircuitBreakerFactory()
    candidates: dict[str, Callable[[], object]] = {
        "bare call": work,
        "resilient CircuitBreaker (CountWindow)": CircuitBreaker("bench", window=CountWindow(100))(
            work
        ),
        "resilient CircuitBreaker (TimeWindow)": CircuitBreaker(
            "bench-time", window=TimeWindow(30)
        )(work),
        "resilient CircuitBreaker.call": lambda: breaker.call(work),
        "circuitbreaker @circuit": circuitbreaker.circuit(work),
        "pybreaker": pybreaker.CircuitBreaker()(work),
        "aiobreaker (sync call)": aiobreaker.CircuitBreaker()(work),
        "purgatory (sync, in memory)": purgatory_factory("bench")(work),
    }
    times = compare(candidates)
    for name, timing in times.items():
        report.add(GROUP, name, timing, baseline=name == "bare call")
    bare = times["bare call"]
    ours = subtract_baseline(times["resilient CircuitBreaker (CountWindow)"], bare)
    report.target(
        "breaker, closed success path (sync): added cost vs circuitbreaker",
        ours,
        subtract_baseline(times["circuitbreaker @circuit"], bare),
        at_most=0.8,
        peer="circuitbreaker",
    )
    report.target(
        "breaker, closed success path (sync): added cost vs pybreaker",
        ours,
        subtract_baseline(times["pybreaker"], bare),
        at_most=1 / 3,
        peer="pybreaker",
        headline=False,
    )


def _closed_async(report: Report) -> None:
    import anyio

    purgatory_factory = purgatory.AsyncCircuitBreakerFactory()
    anyio.run(purgatory_factory.initialize)
    candidates: dict[str, Callable[[], Awaitable[object]]] = {
        "bare await": awork,
        "resilient CircuitBreaker (CountWindow)": CircuitBreaker(
            "bench-async", window=CountWindow(100)
        )(awork),
        "circuitbreaker @circuit": circuitbreaker.circuit(awork),
        "aiobreaker": aiobreaker.CircuitBreaker()(awork),
        "purgatory (async, in memory)": purgatory_factory("bench-async")(awork),
    }
    times = compare_async(candidates)
    group = "circuit breaker: closed, success (asyncio)"
    for name, timing in times.items():
        report.add(group, name, timing, baseline=name == "bare await")
    bare = times["bare await"]
    report.target(
        "breaker, closed success path (asyncio): added cost vs aiobreaker",
        subtract_baseline(times["resilient CircuitBreaker (CountWindow)"], bare),
        subtract_baseline(times["aiobreaker"], bare),
        at_most=1.0,
        peer="aiobreaker",
        headline=False,
    )


def _rejecting(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` called once; its exception (the breaker's rejection) is caught."""

    def call() -> object:
        try:
            return fn()
        except Exception as error:
            return error

    return call


def _arejecting(fn: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
    async def call() -> object:
        try:
            return await fn()
        except Exception as error:
            return error

    return call


def _tripped(fn: Callable[[], object]) -> Callable[[], object]:
    """Call ``fn`` (wrapping a failing function) until it fails; return it, now open."""
    for _ in range(3):
        with contextlib.suppress(Exception):
            fn()
    return fn


def _open(report: Report) -> None:
    import anyio

    def raise_by_hand() -> object:
        try:
            raise ConnectionError("rejected")
        except ConnectionError as error:
            return error

    forever = datetime.timedelta(seconds=FOREVER)
    purgatory_factory = purgatory.SyncCircuitBreakerFactory(
        default_threshold=1, default_ttl=FOREVER
    )
    ours = _tripped(CircuitBreaker("bench-open", consecutive_failures=1, open_for=FOREVER)(fail))
    candidates: dict[str, Callable[[], object]] = {
        "raise + except by hand": raise_by_hand,
        "resilient CircuitBreaker (open)": _rejecting(ours),
        "circuitbreaker @circuit (open)": _rejecting(
            _tripped(circuitbreaker.circuit(failure_threshold=1, recovery_timeout=FOREVER)(fail))
        ),
        "pybreaker (open)": _rejecting(
            _tripped(pybreaker.CircuitBreaker(fail_max=1, reset_timeout=FOREVER)(fail))
        ),
        "aiobreaker (open, sync call)": _rejecting(
            _tripped(aiobreaker.CircuitBreaker(fail_max=1, timeout_duration=forever)(fail))
        ),
        "purgatory (open, sync)": _rejecting(_tripped(purgatory_factory("bench-open")(fail))),
    }
    times = compare(candidates)
    group = "circuit breaker: open, call rejected (sync)"
    for name, timing in times.items():
        report.add(group, name, timing, baseline=name.startswith("raise"))

    async def araise_by_hand() -> object:
        try:
            raise ConnectionError("rejected")
        except ConnectionError as error:
            return error

    async_factory = purgatory.AsyncCircuitBreakerFactory(default_threshold=1, default_ttl=FOREVER)
    anyio.run(async_factory.initialize)
    aours = CircuitBreaker("bench-open-async", consecutive_failures=1, open_for=FOREVER)(afail)
    aio = aiobreaker.CircuitBreaker(fail_max=1, timeout_duration=forever)(afail)
    fab = circuitbreaker.circuit(failure_threshold=1, recovery_timeout=FOREVER)(afail)
    purg = async_factory("bench-open-async")(afail)

    async def trip() -> None:
        for fn in (aours, aio, fab, purg):
            for _ in range(3):
                with contextlib.suppress(Exception):
                    await fn()

    anyio.run(trip)
    atimes = compare_async(
        {
            "raise + except by hand": araise_by_hand,
            "resilient CircuitBreaker (open)": _arejecting(aours),
            "circuitbreaker @circuit (open)": _arejecting(fab),
            "aiobreaker (open)": _arejecting(aio),
            "purgatory (open, async)": _arejecting(purg),
        }
    )
    group = "circuit breaker: open, call rejected (asyncio)"
    for name, timing in atimes.items():
        report.add(group, name, timing, baseline=name.startswith("raise"))


def _instrumented(report: Report) -> None:
    """The success path with nobody listening, a plain subscriber, and each exporter setting."""
    ours = CircuitBreaker("bench-instrumented", window=CountWindow(100))(work)
    group = "circuit breaker: closed, success, instrumentation (sync)"
    times = exporter_rows(report, group, "resilient CircuitBreaker", ours, work)
    exporter_targets(report, "breaker", times)


def _redis(report: Report) -> None:
    sys.path.insert(0, str(ROOT))
    from tests._redis_server import RedisServer, find_redis_server

    binary = find_redis_server()
    if binary is None:
        print("  redis-server not found: Redis rows skipped", flush=True)
        return
    import redis

    from resilient.stores import RedisStore

    with RedisServer(binary) as server:
        client = redis.Redis.from_url(server.url)
        theirs_client = redis.Redis.from_url(server.url)
        trusting_client = redis.Redis.from_url(server.url)
        ours = CircuitBreaker("bench-shared", window=TimeWindow(30), store=RedisStore(client))
        trusting = CircuitBreaker(
            "bench-shared-trusting",
            window=TimeWindow(30),
            store=RedisStore(trusting_client, breaker_staleness=0.05),
        )
        storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, theirs_client)
        theirs = pybreaker.CircuitBreaker(state_storage=storage)
        execute = client.execute_command
        default_row = "resilient CircuitBreaker(store=RedisStore).call"
        trusting_row = "resilient CircuitBreaker(store=RedisStore(breaker_staleness=0.05)).call"
        rows = compare_paired(
            {
                "PING (one round trip)": lambda: execute("PING"),
                default_row: lambda: ours.call(work),
                trusting_row: lambda: trusting.call(work),
                "pybreaker CircuitRedisStorage .call": lambda: theirs.call(work),
            }
        )
        group = "circuit breaker shared through Redis on 127.0.0.1: closed, success"
        for name, timing in rows.items():
            report.add(group, name, timing, baseline=name.startswith("PING"))
        ping = rows["PING (one round trip)"]
        pybreaker_ratio = rows["pybreaker CircuitRedisStorage .call"].median / ping.median
        report.target(
            "shared Redis breaker, default store (two round trips: acquire, record), "
            "closed path vs a PING round trip",
            rows[default_row],
            ping,
            at_most=1.5,
            peer="PING",
            detail=f"pybreaker CircuitRedisStorage: {pybreaker_ratio:.2f}x PING",
        )
        report.target(
            "shared Redis breaker, RedisStore(breaker_staleness=0.05) (one round trip: record), "
            "closed path vs a PING round trip",
            rows[trusting_row],
            ping,
            at_most=1.5,
            peer="PING",
            detail=f"default store: {rows[default_row].median / ping.median:.2f}x PING",
        )
        client.close()
        trusting_client.close()
        theirs_client.close()
