"""`Pipeline.get` and ``with pipeline:`` / ``async with pipeline:``."""

from __future__ import annotations

import anyio
import pytest

from resilient import (
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    DeadlineExceeded,
    Pipeline,
    RateLimitedError,
    Retry,
    Timeout,
    TokenBucket,
    current_deadline,
)
from resilient.testing import FakeClock


def _members(clock: FakeClock) -> tuple[Timeout, CircuitBreaker, TokenBucket, Bulkhead]:
    return (
        Timeout(10.0, clock=clock),
        CircuitBreaker("db", consecutive_failures=1, clock=clock),
        TokenBucket(rate=1.0, capacity=2, clock=clock),
        Bulkhead(1),
    )


# -- get ------------------------------------------------------------------------------------


def test_get_returns_the_member_of_that_type() -> None:
    timeout, breaker, limiter, bulkhead = _members(FakeClock())
    pipeline = Pipeline(timeout, breaker, limiter, bulkhead)
    assert pipeline.get(CircuitBreaker) is breaker
    assert pipeline.get(Bulkhead) is bulkhead
    assert pipeline.get(TokenBucket) is limiter
    assert pipeline.get(Retry) is None


def test_get_returns_the_first_match_and_searches_nested_pipelines() -> None:
    first, second = Timeout(1.0), Timeout(2.0)
    breaker = CircuitBreaker("inner")
    pipeline = Pipeline(first, Pipeline(second, breaker))
    assert pipeline.get(Timeout) is first
    assert pipeline.get(CircuitBreaker) is breaker


def test_get_of_a_non_class_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="kind must be a class"):
        Pipeline().get("CircuitBreaker")  # type: ignore[arg-type]


def test_get_finds_a_policy_built_from_configuration() -> None:
    from resilient.config import load_policies

    pipeline = load_policies({"db": {"retry": {}, "circuit_breaker": {}}})["db"]
    breaker = pipeline.get(CircuitBreaker)
    assert isinstance(breaker, CircuitBreaker)
    assert breaker.name == "db"


# -- with pipeline --------------------------------------------------------------------------


def test_with_pipeline_enters_every_member_and_releases_them() -> None:
    clock = FakeClock()
    timeout, breaker, limiter, bulkhead = _members(clock)
    pipeline = Pipeline(timeout, breaker, limiter, bulkhead)
    with pipeline as entered:
        assert entered is pipeline
        assert current_deadline() is not None  # the timeout's deadline is in scope
        assert bulkhead.available == 0  # the bulkhead's slot is held
    assert current_deadline() is None
    assert bulkhead.available == 1
    assert breaker.metrics().calls == 1
    assert limiter.try_acquire().remaining == 0  # the block spent one of two units


def test_an_error_in_the_block_reaches_every_member() -> None:
    clock = FakeClock()
    timeout, breaker, limiter, bulkhead = _members(clock)
    pipeline = Pipeline(timeout, breaker, limiter, bulkhead)
    with pytest.raises(ConnectionError), pipeline:
        raise ConnectionError
    assert breaker.metrics().failures == 1
    assert breaker.state.name == "OPEN"
    assert bulkhead.available == 1


def test_a_refusal_on_entry_exits_the_members_already_entered() -> None:
    clock = FakeClock()
    timeout, breaker, limiter, bulkhead = _members(clock)
    pipeline = Pipeline(timeout, breaker, limiter, bulkhead)
    with bulkhead, pytest.raises(BulkheadFullError), pipeline:  # the bulkhead's one slot is taken
        pytest.fail("the block must not run")
    assert current_deadline() is None  # the timeout was exited
    assert breaker.metrics().calls == 0  # a rejection counts neither way, and the trial is back
    limiter_only = Pipeline(TokenBucket(rate=1.0, capacity=1, clock=clock), Bulkhead(1))
    with limiter_only:
        pass
    with pytest.raises(RateLimitedError), limiter_only:
        pytest.fail("the block must not run")
    assert limiter_only.get(Bulkhead).available == 1  # type: ignore[union-attr]


def test_with_pipeline_names_the_member_that_cannot_guard_a_block() -> None:
    retry = Retry(attempts=3, name="fetch")
    bulkhead = Bulkhead(1)
    pipeline = Pipeline(Timeout(1.0), retry, bulkhead)
    with pytest.raises(TypeError, match=r"policies\[1\]") as info, pipeline:
        pytest.fail("the block must not run")
    assert "Retry" in str(info.value)
    assert bulkhead.available == 1  # nothing was entered
    assert current_deadline() is None


def test_a_nested_pipeline_is_checked_too() -> None:
    pipeline = Pipeline(Timeout(1.0), Pipeline(Bulkhead(1), Retry()))
    with pytest.raises(TypeError, match="Retry"), pipeline:
        pytest.fail("the block must not run")


def test_an_empty_pipeline_guards_nothing() -> None:
    with Pipeline() as pipeline:
        assert len(pipeline) == 0


def test_one_pipeline_can_be_entered_by_many_threads() -> None:
    import threading

    bulkhead = Bulkhead(8)
    pipeline = Pipeline(CircuitBreaker("shared"), bulkhead)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with pipeline:
                barrier.wait(timeout=30)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert bulkhead.available == 8
    assert pipeline.get(CircuitBreaker).metrics().calls == 8  # type: ignore[union-attr]


async def test_async_with_pipeline_enters_and_releases() -> None:
    clock = FakeClock()
    timeout, breaker, limiter, bulkhead = _members(clock)
    pipeline = Pipeline(timeout, breaker, limiter, bulkhead)
    async with pipeline as entered:
        assert entered is pipeline
        assert current_deadline() is not None
        assert bulkhead.available == 0
        await anyio.lowlevel.checkpoint()
    assert bulkhead.available == 1
    assert breaker.metrics().calls == 1
    with pytest.raises(ConnectionError):
        async with pipeline:
            raise ConnectionError
    assert breaker.state.name == "OPEN"
    assert bulkhead.available == 1


async def test_async_with_pipeline_times_out_the_block() -> None:
    pipeline = Pipeline(Timeout(0.01), Bulkhead(1))
    with pytest.raises(DeadlineExceeded):
        async with pipeline:
            await anyio.sleep(10)
    assert pipeline.get(Bulkhead).available == 1  # type: ignore[union-attr]


async def test_async_with_pipeline_names_the_member_that_cannot_guard_a_block() -> None:
    bulkhead = Bulkhead(1)
    with pytest.raises(TypeError, match=r"async with.*policies\[0\].*Retry"):
        async with Pipeline(Retry(), bulkhead):
            pytest.fail("the block must not run")
    assert bulkhead.available == 1
