"""`PrometheusMetrics`: the exposition after a scripted scenario, parsed by prometheus-client."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import resilient
from resilient._events import HUB
from resilient.instrumentation.prometheus import PrometheusMetrics

from .._concurrency import hammer_in_threads
from ._scenario import run_scenario

# Every test runs with the C success path of @retry and fold of the histograms, then without.
pytestmark = pytest.mark.usefixtures("retry_impl")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(registry: CollectorRegistry) -> Samples:
    """Every sample of the exposition text, parsed back by prometheus-client's own parser."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def pick(
    all_samples: Samples, name: str, *policies: str
) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric; with ``policies``, only those with these policy names.

    (Gauges report every breaker and bulkhead alive in the process, other tests' too.)
    """
    return {
        labels: value
        for (metric, labels), value in all_samples.items()
        if metric == name and (not policies or dict(labels)["name"] in policies)
    }


def labels(**pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(pairs.items()))


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry, durations=True)
    yield registry
    metrics.close()
    assert HUB.active is False


def _states(current: str) -> dict[tuple[tuple[str, str], ...], float]:
    states = ("closed", "open", "half_open", "forced_open", "disabled")
    return {labels(name="payments", state=s): float(s == current) for s in states}


def test_the_scenario_gives_exactly_the_expected_metrics(registry: CollectorRegistry) -> None:
    snapshots: dict[str, Samples] = {}
    kept = run_scenario(
        while_open=lambda: snapshots.__setitem__("open", samples(registry)),
        while_full=lambda: snapshots.__setitem__("full", samples(registry)),
    )
    final = samples(registry)

    assert pick(final, "resilient_calls_total") == {
        labels(policy="retry", name="fetch", outcome="success"): 1.0,
        labels(policy="circuit_breaker", name="payments", outcome="failure"): 2.0,
        labels(policy="circuit_breaker", name="payments", outcome="success"): 1.0,
        labels(policy="rate_limiter", name="api", outcome="success"): 1.0,
    }
    assert pick(final, "resilient_retries_total") == {labels(name="fetch"): 2.0}
    assert pick(final, "resilient_rejections_total") == {
        labels(policy="circuit_breaker", name="payments", reason="open"): 1.0,
        labels(policy="bulkhead", name="db", reason="full"): 1.0,
    }
    assert pick(final, "resilient_rate_limited_total") == {labels(name="api"): 1.0}
    counts = pick(final, "resilient_call_duration_seconds_count")
    sums = pick(final, "resilient_call_duration_seconds_sum")
    assert counts == {
        labels(policy="retry", name="fetch"): 1.0,
        labels(policy="circuit_breaker", name="payments"): 3.0,
        labels(policy="rate_limiter", name="api"): 1.0,
    }
    assert sums[labels(policy="retry", name="fetch")] == pytest.approx(1.3)
    assert sums[labels(policy="circuit_breaker", name="payments")] == pytest.approx(0.6)
    buckets = pick(final, "resilient_call_duration_seconds_bucket")
    payments = {dict(k)["le"]: v for k, v in buckets.items() if dict(k)["name"] == "payments"}
    assert payments["0.1"] == 0.0
    assert payments["0.25"] == 3.0
    assert payments["+Inf"] == 3.0

    assert pick(snapshots["open"], "resilient_circuit_state", "payments") == _states("open")
    assert pick(final, "resilient_circuit_state", "payments") == _states("closed")
    assert pick(snapshots["full"], "resilient_bulkhead_in_use", "db") == {labels(name="db"): 1.0}
    assert pick(final, "resilient_bulkhead_in_use", "db") == {labels(name="db"): 0.0}
    del kept


def test_gauges_follow_live_policies_only(registry: CollectorRegistry) -> None:
    import gc

    bulkhead = resilient.Bulkhead(2, name="pool")
    gauge = "resilient_bulkhead_in_use"
    assert pick(samples(registry), gauge, "pool") == {labels(name="pool"): 0.0}
    del bulkhead
    gc.collect()
    assert pick(samples(registry), gauge, "pool") == {}


def test_no_metric_work_for_events_it_does_not_export(registry: CollectorRegistry) -> None:
    from resilient.instrumentation import LimitChanged

    subscriptions = HUB._table[0]
    assert len(subscriptions) == 6  # one per exported event type
    assert not any(s.wants(LimitChanged) for s in subscriptions)
    assert HUB.timing is True  # it asked for CallCompleted
    resilient.CircuitBreaker("no-records").call(lambda: None)
    assert HUB.calls[("circuit_breaker", "no-records")].durations is True


def test_a_second_exporter_on_the_same_registry_is_refused_clearly() -> None:
    registry = CollectorRegistry()
    first = PrometheusMetrics(registry=registry)
    try:
        with pytest.raises(ValueError, match="already has resilient_calls_total"):
            PrometheusMetrics(registry=registry)
        other = PrometheusMetrics(registry=registry, namespace="edge")
        other.close()
    finally:
        first.close()
    first.close()  # twice is once
    again = PrometheusMetrics(registry=registry)  # closed: the names are free again
    again.close()
    assert HUB.active is False


def test_labels_are_policy_names_never_keys(registry: CollectorRegistry) -> None:
    limiter = resilient.TokenBucket(rate=1, capacity=1, name="api")
    for user in ("alice", "bob", "carol"):
        limiter.try_acquire(user)
        limiter.try_acquire(user)
    text = generate_latest(registry).decode()
    assert "alice" not in text
    assert pick(samples(registry), "resilient_rate_limited_total") == {labels(name="api"): 3.0}


def test_the_namespace_prefixes_every_metric() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry, namespace="edge")
    try:
        resilient.Bulkhead(1, name="x").call(lambda: None)
        names = {name for name, _ in samples(registry)}
    finally:
        metrics.close()
    assert names
    assert all(name.startswith("edge_") for name in names)


def test_bad_namespace_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="namespace"):
        PrometheusMetrics(registry=CollectorRegistry(), namespace="no spaces")


def test_a_breaker_shared_through_redis_is_not_read_at_scrape_time(
    registry: CollectorRegistry, redis_url: str
) -> None:
    from resilient.stores import RedisStore

    store = RedisStore.from_url(redis_url)
    commands: list[str] = []
    breaker = resilient.CircuitBreaker(
        "shared-gauge", failure_rate=None, consecutive_failures=1, store=store
    )
    gauge = "resilient_circuit_state"
    try:
        assert pick(samples(registry), gauge, "shared-gauge") == {}  # nothing seen yet
        with pytest.raises(ZeroDivisionError):
            breaker.call(lambda: 1 / 0)
        execute = store.client.execute_command

        def spy(*args: object, **kwargs: object) -> object:
            commands.append(str(args[0]))
            return execute(*args, **kwargs)

        store.client.execute_command = spy
        states = pick(samples(registry), gauge, "shared-gauge")
    finally:
        store.client.close()
    assert commands == []  # the scrape did no I/O
    assert states[labels(name="shared-gauge", state="open")] == 1.0
    assert states[labels(name="shared-gauge", state="closed")] == 0.0


def test_without_durations_calls_are_counted_and_no_clock_is_read() -> None:
    from resilient.testing import FakeClock

    class CountingClock(FakeClock):
        reads = 0

        def monotonic(self) -> float:
            self.reads += 1
            return super().monotonic()

    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry, durations=False)
    clock = CountingClock()
    retry = resilient.Retry(on=ConnectionError, attempts=2, clock=clock, name="quiet")
    work = retry(lambda: "ok")
    try:
        for _ in range(5):
            assert work() == "ok"
        assert retry.call(lambda: "ok") == "ok"
        with pytest.raises(KeyError):
            retry(lambda: {}["missing"])()  # not retryable: one attempt, one failure
        final = samples(registry)
    finally:
        metrics.close()
    assert clock.reads == 0
    assert pick(final, "resilient_calls_total", "quiet") == {
        labels(policy="retry", name="quiet", outcome="success"): 6.0,
        labels(policy="retry", name="quiet", outcome="failure"): 1.0,
    }
    assert pick(final, "resilient_call_duration_seconds_count") == {}
    assert ("circuit_breaker", "quiet") not in HUB.counting


def test_counts_stay_exact_under_16_threads() -> None:

    breaker = resilient.CircuitBreaker("threads", failure_rate=None, consecutive_failures=10**9)
    retry = resilient.Retry(on=ConnectionError, attempts=1, name="threads")
    through_breaker = breaker(lambda: None)
    through_retry = retry(lambda: None)
    rounds = 1_000

    def hammer(start: threading.Barrier) -> None:
        start.wait()
        for _ in range(rounds):
            through_breaker()
            through_retry()
            with pytest.raises(ZeroDivisionError):
                breaker.call(lambda: 1 / 0)

    def run_16_threads() -> None:
        hammer_in_threads(16, hammer)  # increments interleave

    counted = PrometheusMetrics(registry=CollectorRegistry(), namespace="bare", durations=False)
    try:
        run_16_threads()  # the inlined path: counters only
        metrics = PrometheusMetrics(registry=CollectorRegistry(), durations=True, buckets=(0.5, 1))
        try:
            run_16_threads()  # two exporters, one timing: every call is timed
            final = samples(metrics.registry)
        finally:
            metrics.close()
        bare = samples(counted.registry)
    finally:
        counted.close()
    alone = PrometheusMetrics(registry=CollectorRegistry(), namespace="inline")
    try:
        run_16_threads()  # one exporter, the defaults: timed inline, folded on the way
        assert ("retry", "threads") in HUB.nanos
        inline = samples(alone.registry)
    finally:
        alone.close()

    def expected(calls: int) -> dict[tuple[tuple[str, str], ...], float]:
        return {
            labels(policy="circuit_breaker", name="threads", outcome="success"): float(calls),
            labels(policy="circuit_breaker", name="threads", outcome="failure"): float(calls),
            labels(policy="retry", name="threads", outcome="success"): float(calls),
        }

    calls = 16 * rounds
    assert pick(final, "resilient_calls_total", "threads") == expected(calls)
    assert pick(bare, "bare_calls_total", "threads") == expected(2 * calls)
    counts = pick(final, "resilient_call_duration_seconds_count", "threads")
    assert counts == {
        labels(policy="circuit_breaker", name="threads"): float(2 * calls),
        labels(policy="retry", name="threads"): float(calls),
    }
    buckets = pick(final, "resilient_call_duration_seconds_bucket", "threads")
    assert buckets[labels(policy="retry", name="threads", le="+Inf")] == float(calls)
    assert pick(inline, "inline_calls_total", "threads") == expected(calls)
    assert pick(inline, "inline_call_duration_seconds_count", "threads") == counts
    buckets = pick(inline, "inline_call_duration_seconds_bucket", "threads")
    assert buckets[labels(policy="circuit_breaker", name="threads", le="+Inf")] == 2.0 * calls


def test_the_histogram_sum_is_exact_across_folds() -> None:
    from resilient.testing import FakeClock

    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry, durations=True, buckets=[0.1, 1, 10])
    clock = FakeClock()

    def quarter() -> None:
        clock.advance(0.25)

    breaker = resilient.CircuitBreaker("folds", clock=clock)
    try:
        for _ in range(3000):  # more than one fold of the pending durations
            breaker.call(quarter)
        final = samples(registry)
    finally:
        metrics.close()
    sums = pick(final, "resilient_call_duration_seconds_sum", "folds")
    assert sums == {labels(policy="circuit_breaker", name="folds"): pytest.approx(750.0)}
    buckets = pick(final, "resilient_call_duration_seconds_bucket", "folds")
    assert {dict(k)["le"]: v for k, v in buckets.items()} == {
        "0.1": 0.0,
        "1.0": 3000.0,
        "10.0": 3000.0,
        "+Inf": 3000.0,
    }


def test_bad_buckets_and_durations_are_refused() -> None:
    with pytest.raises(ValueError, match="buckets"):
        PrometheusMetrics(registry=CollectorRegistry(), buckets=[1.0, 0.5])
    with pytest.raises(ValueError, match="buckets"):
        PrometheusMetrics(registry=CollectorRegistry(), buckets=["x"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="durations"):
        PrometheusMetrics(registry=CollectorRegistry(), durations=1)  # type: ignore[arg-type]
    assert HUB.active is False


def test_a_plain_subscriber_and_the_exporter_share_the_call_path() -> None:
    from resilient.instrumentation import CallCompleted
    from resilient.testing import FakeClock

    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    seen: list[CallCompleted] = []
    resilient.instrumentation.subscribe(seen.append, events=CallCompleted)
    clock = FakeClock()

    def tick() -> str:
        clock.advance(0.5)
        return "ok"

    try:
        assert resilient.CircuitBreaker("both", clock=clock)(tick)() == "ok"
        final = samples(registry)
    finally:
        resilient.instrumentation.unsubscribe(seen.append)
        metrics.close()
    assert [(e.name, e.outcome, e.duration) for e in seen] == [("both", "success", 0.5)]
    assert pick(final, "resilient_calls_total", "both") == {
        labels(policy="circuit_breaker", name="both", outcome="success"): 1.0
    }


def test_multiprocess_mode_uses_prometheus_client_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent")
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry, durations=True)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    try:
        from prometheus_client import Counter

        assert isinstance(metrics._calls._calls, Counter)
        breaker = resilient.CircuitBreaker("direct")
        breaker.call(lambda: None)
        with pytest.raises(ZeroDivisionError):
            breaker.call(lambda: 1 / 0)
        final = samples(registry)
    finally:
        metrics.close()
    assert pick(final, "resilient_calls_total", "direct") == {
        labels(policy="circuit_breaker", name="direct", outcome="success"): 1.0,
        labels(policy="circuit_breaker", name="direct", outcome="failure"): 1.0,
    }
    counts = pick(final, "resilient_call_duration_seconds_count", "direct")
    assert counts == {labels(policy="circuit_breaker", name="direct"): 2.0}


AsyncCall = Callable[[], Awaitable[str]]


def async_calls(
    retry: resilient.Retry,
) -> tuple[AsyncCall, AsyncCall, AsyncCall]:
    """Three functions under ``retry``: one succeeds, one fails its first attempt, one raises.

    The second raises ConnectionError once, then succeeds; the third raises KeyError, which
    ``retry`` never retries.
    """
    tries: list[int] = []

    @retry
    async def ok() -> str:
        return "ok"

    @retry
    async def flaky() -> str:
        tries.append(1)
        if len(tries) == 1:
            raise ConnectionError("once")
        return "ok"

    @retry
    async def broken() -> str:
        raise KeyError("never retried")

    return ok, flaky, broken


async def test_async_calls_are_counted_without_durations() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry, durations=False)
    retry = resilient.Retry(on=ConnectionError, attempts=2, name="async-counted")
    ok, flaky, broken = async_calls(retry)

    try:
        for _ in range(3):
            assert await ok() == "ok"
        assert await flaky() == "ok"  # the first attempt failed: the rest of the call counts
        with pytest.raises(KeyError):
            await broken()
        final = samples(registry)
    finally:
        metrics.close()
    assert pick(final, "resilient_calls_total", "async-counted") == {
        labels(policy="retry", name="async-counted", outcome="success"): 4.0,
        labels(policy="retry", name="async-counted", outcome="failure"): 1.0,
    }
    assert pick(final, "resilient_retries_total", "async-counted") == {
        labels(name="async-counted"): 1.0
    }


def test_by_default_calls_on_the_system_clock_are_timed_inline() -> None:
    import time

    from resilient._events import FOLD_AT

    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)  # durations on: the default
    retry = resilient.Retry(
        on=ConnectionError, attempts=2, backoff=resilient.Backoff.constant(0.0), name="inline"
    )
    breaker = resilient.CircuitBreaker("inline", failure_rate=None, consecutive_failures=10**9)
    through_retry = retry(lambda: None)
    through_breaker = breaker(lambda: None)
    tries: list[int] = []

    @retry
    def flaky() -> str:
        tries.append(1)
        if len(tries) % 2:
            raise ConnectionError("every other attempt")
        return "ok"

    calls = 2 * FOLD_AT + 5  # folded twice on the call path, the rest at scrape time
    began = time.monotonic()
    try:
        for _ in range(calls):
            through_retry()
            through_breaker()
        assert HUB.nanos.keys() >= {("retry", "inline"), ("circuit_breaker", "inline")}
        assert flaky() == "ok"  # the first attempt failed: the rest of the call is timed
        with pytest.raises(KeyError):
            retry(lambda: {}["missing"])()  # not retryable: a failure, timed
        failing = breaker(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failing()
        final = samples(registry)
    finally:
        metrics.close()
    elapsed = time.monotonic() - began
    assert pick(final, "resilient_calls_total", "inline") == {
        labels(policy="retry", name="inline", outcome="success"): float(calls + 1),
        labels(policy="retry", name="inline", outcome="failure"): 1.0,
        labels(policy="circuit_breaker", name="inline", outcome="success"): float(calls),
        labels(policy="circuit_breaker", name="inline", outcome="failure"): 1.0,
    }
    counts = pick(final, "resilient_call_duration_seconds_count", "inline")
    assert counts == {
        labels(policy="retry", name="inline"): float(calls + 2),
        labels(policy="circuit_breaker", name="inline"): float(calls + 1),
    }
    sums = pick(final, "resilient_call_duration_seconds_sum", "inline")
    buckets = pick(final, "resilient_call_duration_seconds_bucket", "inline")
    for policy, count in (("retry", calls + 2), ("circuit_breaker", calls + 1)):
        assert 0.0 < sums[labels(policy=policy, name="inline")] < elapsed
        series = sorted(
            (float(dict(k)["le"]), v) for k, v in buckets.items() if dict(k)["policy"] == policy
        )
        assert series[-1] == (float("inf"), float(count))
        assert [v for _, v in series] == sorted(v for _, v in series)  # cumulative


def test_nanoseconds_are_folded_into_the_buckets_exactly() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry, buckets=(0.005, 0.01))
    try:
        sink = metrics._calls.bind("retry", "folded")
        assert sink.nanos is not None
        # On a bound, in the bucket (le: less or equal); one nanosecond more, in the next.
        sink.nanos.extend([0, 5_000_000, 5_000_001, 10_000_000, 10_000_001, 3 * 10**9])
        sink.succeeded(0.0075)  # another clock's duration, in seconds
        sink.record("failure", 0.02)
        final = samples(registry)
        sink.nanos.append(1)  # appended after a scrape: counted by the next
        again = samples(registry)
    finally:
        metrics.close()
    buckets = pick(final, "resilient_call_duration_seconds_bucket", "folded")
    assert {dict(k)["le"]: v for k, v in buckets.items()} == {
        "0.005": 2.0,
        "0.01": 5.0,
        "+Inf": 8.0,
    }
    total = (5_000_000 + 5_000_001 + 10_000_000 + 10_000_001 + 3 * 10**9) / 1e9 + 0.0275
    assert pick(final, "resilient_call_duration_seconds_sum", "folded") == {
        labels(policy="retry", name="folded"): pytest.approx(total, abs=1e-12)
    }
    assert pick(final, "resilient_calls_total", "folded") == {
        labels(policy="retry", name="folded", outcome="success"): 7.0,
        labels(policy="retry", name="folded", outcome="failure"): 1.0,
    }
    assert (
        pick(again, "resilient_calls_total", "folded")[
            labels(policy="retry", name="folded", outcome="success")
        ]
        == 8.0
    )


def test_another_clock_is_timed_on_that_clock_not_inline() -> None:
    from resilient.testing import FakeClock

    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry, buckets=(1, 2))
    clock = FakeClock()

    def slow() -> None:
        clock.advance(1.5)

    try:
        resilient.Retry(on=ConnectionError, clock=clock, name="fake")(slow)()
        resilient.Retry(on=ConnectionError, clock=clock, name="fake")(slow)()
        assert ("retry", "fake") in HUB.nanos  # bound, but this policy's clock is not the system's
        final = samples(registry)
    finally:
        metrics.close()
    assert pick(final, "resilient_call_duration_seconds_sum", "fake") == {
        labels(policy="retry", name="fake"): 3.0
    }
    buckets = pick(final, "resilient_call_duration_seconds_bucket", "fake")
    assert {dict(k)["le"]: v for k, v in buckets.items()} == {"1.0": 0.0, "2.0": 2.0, "+Inf": 2.0}


async def test_async_calls_are_timed_inline_by_default() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    retry = resilient.Retry(
        on=ConnectionError, attempts=2, backoff=resilient.Backoff.constant(0.0), name="async-timed"
    )
    ok, flaky, broken = async_calls(retry)

    try:
        for _ in range(3):
            assert await ok() == "ok"
        assert ("retry", "async-timed") in HUB.nanos
        assert await flaky() == "ok"
        with pytest.raises(KeyError):
            await broken()
        final = samples(registry)
    finally:
        metrics.close()
    assert pick(final, "resilient_calls_total", "async-timed") == {
        labels(policy="retry", name="async-timed", outcome="success"): 4.0,
        labels(policy="retry", name="async-timed", outcome="failure"): 1.0,
    }
    assert pick(final, "resilient_call_duration_seconds_count", "async-timed") == {
        labels(policy="retry", name="async-timed"): 5.0
    }


def test_a_decorated_retry_reports_every_call_and_its_duration_exactly() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry, buckets=(0.01, 1.0))
    tries: list[int] = []

    @resilient.retry(on=ConnectionError, attempts=2, backoff=resilient.Backoff.constant(0.0))
    def exact(fail: bool = False, wait: float = 0.0) -> str:
        tries.append(1)
        if fail and len(tries) % 2:
            raise ConnectionError("once")  # retried: the call succeeds on its second attempt
        time.sleep(wait)
        return "ok"

    try:
        for _ in range(5):
            assert exact() == "ok"
        assert exact(fail=True) == "ok"
        start = time.monotonic_ns()
        assert exact(wait=0.02) == "ok"
        elapsed = time.monotonic_ns() - start
        with pytest.raises(TypeError):
            exact(bogus=1)  # type: ignore[call-arg]
        final = samples(registry)
    finally:
        metrics.close()
    name = exact.__qualname__
    assert pick(final, "resilient_calls_total", name) == {
        labels(policy="retry", name=name, outcome="success"): 7.0,
        labels(policy="retry", name=name, outcome="failure"): 1.0,
    }
    buckets = pick(final, "resilient_call_duration_seconds_bucket", name)
    assert {dict(k)["le"]: v for k, v in buckets.items()} == {"0.01": 7.0, "1.0": 8.0, "+Inf": 8.0}
    (total,) = pick(final, "resilient_call_duration_seconds_sum", name).values()
    assert 0.02 <= total <= elapsed / 1e9 + 0.01  # the sleeping call's, and a little more


def test_durations_are_folded_into_the_histogram_every_fold_at_calls() -> None:
    from resilient._events import FOLD_AT

    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    wrapped = resilient.retry(name="fold-at")(lambda: None)
    try:
        wrapped()  # the first call binds the exporter's sink (timed in seconds)
        pending = HUB.nanos[("retry", "fold-at")]
        assert len(pending) == 0
        for _ in range(FOLD_AT - 1):
            wrapped()
        assert len(pending) == FOLD_AT - 1  # appended, not folded yet
        wrapped()
        assert len(pending) == 0  # the FOLD_AT-th appended folded them all
        wrapped()
        assert len(pending) == 1
        final = samples(registry)  # a scrape folds the rest
        assert len(pending) == 0
    finally:
        metrics.close()
    assert pick(final, "resilient_call_duration_seconds_count", "fold-at") == {
        labels(policy="retry", name="fold-at"): float(FOLD_AT + 2)
    }


@pytest.mark.parametrize("durations", [True, False])
def test_a_decorated_retry_counts_exactly_under_8_threads(durations: bool) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry, durations=durations)
    rounds = 2_000

    @resilient.retry(on=ConnectionError, attempts=1, name="eight")
    def work(i: int) -> int:
        if i % 10 == 0:
            raise ConnectionError  # a failure every tenth call: attempts=1, not retried
        return i

    def hammer(start: threading.Barrier) -> None:
        start.wait()
        for i in range(rounds):
            with contextlib.suppress(ConnectionError):
                work(i)

    hammer_in_threads(8, hammer)  # appends and folds interleave
    try:
        final = samples(registry)
    finally:
        metrics.close()
    failures = 8 * (rounds // 10)
    assert pick(final, "resilient_calls_total", "eight") == {
        labels(policy="retry", name="eight", outcome="success"): float(8 * rounds - failures),
        labels(policy="retry", name="eight", outcome="failure"): float(failures),
    }
    if durations:
        assert pick(final, "resilient_call_duration_seconds_count", "eight") == {
            labels(policy="retry", name="eight"): float(8 * rounds)
        }


def test_folding_counts_like_sorting_and_bisecting(retry_impl: str) -> None:
    import random

    from resilient.instrumentation import _calls

    seconds = (0.0, 5e-9, 5e-9, 1e-8, 2.0**32, math.inf)
    timings = _calls._Timings("retry", "t", seconds)
    assert (type(timings.nanos) is list) == (retry_impl == "python")
    bounds = timings._bounds_ns  # at most b seconds: <= floor(b * 10**9) nanoseconds
    batches = [
        [],
        [0, 4, 5, 6, 10, 11, 2**32 * 10**9, 2**32 * 10**9 + 1],
        [random.randrange(-3, 20) for _ in range(500)],
        [2**62, 2**62, 2**62],  # a sum beyond 64 bits
    ]
    calls = 0
    total = 0
    running = [0] * len(bounds)
    for batch in batches:
        timings.nanos.extend(batch)  # type: ignore[attr-defined]
        assert len(timings.nanos) == len(batch)
        timings.fold()
        assert len(timings.nanos) == 0
        calls += len(batch)
        total += sum(batch)
        running = [
            r + sum(1 for d in batch if d <= b) for r, b in zip(running, bounds, strict=True)
        ]
        histogram, seconds_total = timings.histogram()
        assert [count for _, count in histogram] == [*running, calls]
        assert timings._ns_sum == total  # exact, in integer nanoseconds
        assert seconds_total == pytest.approx(total / 1e9)


def test_the_c_buffer_of_durations_takes_only_ints_within_64_bits(retry_impl: str) -> None:
    from resilient.instrumentation import _calls

    if retry_impl == "python":
        pytest.skip("the pure Python version keeps a list")
    nanos = _calls._Timings("retry", "t", (1.0, math.inf)).nanos
    with pytest.raises(TypeError):
        nanos.append(1.5)
    with pytest.raises(OverflowError):
        nanos.append(2**63)
    nanos.append(True)  # an int, as in a list
    assert len(nanos) == 1
