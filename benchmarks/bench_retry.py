"""Retry: the success path, and one failure then success, against tenacity, backoff and stamina.

Every library is configured the same way: 3 attempts, retrying ``ConnectionError``.

- Success path: the wrapped function succeeds at once, so what is measured is what a healthy
  call pays for being wrapped. Each library keeps its documented default backoff (it is never
  used). Overheads are the wrapped call less the bare call of the same run.
- One failure then success: the function raises ``ConnectionError`` on every other call, so
  each call through a retry fails once and succeeds on the second attempt. Every library waits
  **zero** seconds between attempts (resilient ``Backoff.constant(0, jitter="none")``, tenacity
  ``wait_none()``, backoff ``constant`` with ``interval=0, jitter=None``, stamina
  ``wait_initial=0, wait_max=0, wait_jitter=0``), so the rows compare the bookkeeping of a
  retry, not sleeping. The reference is a hand-written ``try``/``except`` that calls again.
- Nobody listens: backoff gets ``logger=None`` and stamina no retry hooks
  (``stamina.instrumentation.set_on_retry_hooks([])``), as resilient has no subscriber.
- With instrumentation (sync): ``@retry`` with nobody listening, with a plain subscriber, and
  with each exporter subscribed in turn: ``PrometheusMetrics`` with its duration histogram (the
  default) and with ``durations=False``, ``OpenTelemetryInstrumentation`` on the SDK with and
  without durations (see ``_exporters.py``).

Targets: ``@retry`` adds at most 0.05x what tenacity adds and less than backoff (sync and
asyncio); with PrometheusMetrics, less than twice the uninstrumented call, with durations on
(the default) and, reported apart, with ``durations=False``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import backoff as backoff_lib
import stamina
import tenacity

import resilient

from ._exporters import exporter_rows, exporter_targets
from ._harness import Report, compare, compare_async, subtract_baseline


def work() -> int:
    return 1


async def awork() -> int:
    return 1


def run(report: Report) -> None:
    # Nobody listens to any library's retries: stamina's default hooks log each retry (and
    # print it when structlog is missing), backoff's log through `logging` unless logger=None.
    stamina.instrumentation.set_on_retry_hooks([])
    _success(report)
    _one_failure(report)
    _instrumented(report)


def _decorated(fn: Any, *, zero_delay: bool = False) -> dict[str, Any]:
    """``fn`` under each library's retry: 3 attempts on ConnectionError."""
    if zero_delay:
        ours = resilient.retry(
            on=ConnectionError, attempts=3, backoff=resilient.Backoff.constant(0.0, jitter="none")
        )(fn)
        ten = tenacity.retry(
            retry=tenacity.retry_if_exception_type(ConnectionError),
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_none(),
            reraise=True,
        )(fn)
        bo = backoff_lib.on_exception(
            backoff_lib.constant, ConnectionError, max_tries=3, interval=0, jitter=None, logger=None
        )(fn)
        st = stamina.retry(
            on=ConnectionError, attempts=3, wait_initial=0, wait_max=0, wait_jitter=0
        )(fn)
    else:
        ours = resilient.retry(on=ConnectionError, attempts=3)(fn)
        ten = tenacity.retry(
            retry=tenacity.retry_if_exception_type(ConnectionError),
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_random_exponential(multiplier=0.1, max=10),
        )(fn)
        bo = backoff_lib.on_exception(backoff_lib.expo, ConnectionError, max_tries=3, logger=None)(
            fn
        )
        st = stamina.retry(on=ConnectionError, attempts=3)(fn)
    return {
        "resilient @retry": ours,
        "tenacity @retry": ten,
        "backoff @on_exception": bo,
        "stamina @retry": st,
    }


def _targets(report: Report, flavour: str, bare: float, times: dict[str, float]) -> None:
    added = subtract_baseline(times["resilient @retry"], bare)
    report.target(
        f"retry, success path ({flavour}): added cost vs tenacity",
        added,
        subtract_baseline(times["tenacity @retry"], bare),
        at_most=0.05,
        peer="tenacity",
    )
    report.target(
        f"retry, success path ({flavour}): added cost vs backoff",
        added,
        subtract_baseline(times["backoff @on_exception"], bare),
        at_most=1.0,
        strict=True,
        peer="backoff",
    )


def _success(report: Report) -> None:
    group = "retry, success path (sync)"
    candidates: dict[str, Callable[[], object]] = {"bare call": work, **_decorated(work)}
    times = compare(candidates)
    for name, timing in times.items():
        report.add(group, name, timing, baseline=name == "bare call")
    medians = {name: t.median for name, t in times.items()}
    _targets(report, "sync", medians["bare call"], medians)

    for backend in ("asyncio", "trio"):
        group = f"retry, success path ({backend})"
        acandidates: dict[str, Callable[[], Awaitable[object]]] = {
            "bare await": awork,
            **_decorated(awork),
        }
        if backend == "trio":  # backoff and stamina's async retries sleep through asyncio
            acandidates = {
                k: v
                for k, v in acandidates.items()
                if k.split()[0] in ("bare", "resilient", "tenacity")
            }
        atimes = compare_async(acandidates, backend)
        for name, timing in atimes.items():
            report.add(group, name, timing, baseline=name == "bare await")
        if backend == "asyncio":
            amedians = {name: t.median for name, t in atimes.items()}
            _targets(report, "asyncio", amedians["bare await"], amedians)


def Flaky() -> Callable[[], int]:
    """A function that fails every other call with ``ConnectionError``: each retry fails once."""
    state = [False]

    def flaky() -> int:
        state[0] = not state[0]
        if state[0]:
            raise ConnectionError("flaky")
        return 1

    return flaky


def AFlaky() -> Callable[[], Awaitable[int]]:
    """`Flaky` as a coroutine function."""
    state = [False]

    async def aflaky() -> int:
        state[0] = not state[0]
        if state[0]:
            raise ConnectionError("flaky")
        return 1

    return aflaky


def _one_failure(report: Report) -> None:
    group = "retry, one failure then success, zero delay (sync)"
    by_hand = Flaky()

    def again() -> int:
        try:
            return by_hand()
        except ConnectionError:
            return by_hand()

    candidates = {"try/except, call again (by hand)": again}
    for name in ("resilient @retry", "tenacity @retry", "backoff @on_exception", "stamina @retry"):
        flaky = Flaky()
        candidates[name] = _decorated(flaky, zero_delay=True)[name]
    times = compare(candidates)
    for name, timing in times.items():
        report.add(group, name, timing, baseline=name.startswith("try/except"))

    group = "retry, one failure then success, zero delay (asyncio)"
    aby_hand = AFlaky()

    async def aagain() -> int:
        try:
            return await aby_hand()
        except ConnectionError:
            return await aby_hand()

    acandidates: dict[str, Callable[[], Awaitable[object]]] = {
        "try/except, await again (by hand)": aagain
    }
    for name in ("resilient @retry", "tenacity @retry", "backoff @on_exception", "stamina @retry"):
        acandidates[name] = _decorated(AFlaky(), zero_delay=True)[name]
    atimes = compare_async(acandidates)
    for name, timing in atimes.items():
        report.add(group, name, timing, baseline=name.startswith("try/except"))


def _instrumented(report: Report) -> None:
    """The success path with nobody listening, a plain subscriber, and each exporter setting."""
    ours = resilient.retry(on=ConnectionError, attempts=3)(work)
    group = "retry, success path: instrumentation (sync)"
    times = exporter_rows(report, group, "resilient @retry", ours, work)
    exporter_targets(report, "@retry", times)
