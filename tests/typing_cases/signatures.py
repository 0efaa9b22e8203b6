"""Checked by mypy --strict in test_typing.py: decorators keep the signatures they wrap."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from typing_extensions import assert_type

import resilient
from resilient.stores import MemoryStore


@resilient.Pipeline()
def f(x: int, *, y: str = "") -> float:
    return float(x)


@resilient.Pipeline()
async def g(x: int) -> int:
    return x


pipeline = resilient.Pipeline(resilient.Pipeline())


@pipeline
def sync_function(x: int, *, y: str = "") -> float:
    return float(x)


@pipeline
async def async_function(x: int) -> int:
    return x


class Service:
    @pipeline
    async def async_method(self, x: int) -> str:
        return str(x)

    @pipeline
    def sync_method(self, x: int) -> bytes:
        return b"x" * x


def takes_callable(fn: Callable[[int], float]) -> None: ...


def takes_async_callable(fn: Callable[[int], Awaitable[int]]) -> None: ...


async def check() -> None:
    assert_type(f(1, y="a"), float)
    assert_type(f(1), float)
    takes_callable(f)
    assert_type(await g(1), int)
    takes_async_callable(g)
    assert_type(sync_function(1, y="a"), float)
    assert_type(await async_function(1), int)
    assert_type(await Service().async_method(1), str)
    assert_type(Service().sync_method(1), bytes)
    assert_type(pipeline.call(sync_function, 1, y="b"), float)
    assert_type(await pipeline.acall(async_function, 2), int)


@resilient.retry(on=ConnectionError, attempts=3)
def retried(x: int, *, y: str = "") -> float:
    return float(x)


@resilient.retry(backoff=resilient.Backoff.exponential(0.1, 1.0))
async def aretried(x: int) -> int:
    return x


@resilient.timeout(1.0)
def timed(x: int) -> str:
    return str(x)


@resilient.timeout(1.0)
async def atimed(x: int) -> bytes:
    return b"x" * x


async def check_retry_and_timeout() -> None:
    assert_type(retried(1, y="a"), float)
    assert_type(await aretried(1), int)
    assert_type(timed(1), str)
    assert_type(await atimed(1), bytes)
    takes_callable(retried)
    takes_async_callable(aretried)
    assert_type(resilient.retry(), resilient.Retry)
    assert_type(resilient.timeout(2.0), resilient.Timeout)
    async with resilient.timeout(2.0) as deadline:
        assert_type(deadline.remaining(), float)
    for attempt in resilient.Retry().attempts():
        with attempt:
            assert_type(attempt.number, int)


breaker = resilient.CircuitBreaker("typing")
bulkhead = resilient.Bulkhead(2)
adaptive = resilient.AdaptiveBulkhead()


@breaker
def guarded(x: int, *, y: str = "") -> float:
    return float(x)


@breaker
async def aguarded(x: int) -> str:
    return str(x)


@bulkhead
def limited(x: int) -> bytes:
    return b"x" * x


@bulkhead
async def alimited(x: int) -> int:
    return x


@adaptive
async def adapted(x: int) -> list[int]:
    return [x]


async def check_breaker_and_bulkheads() -> None:
    assert_type(guarded(1, y="a"), float)
    assert_type(await aguarded(1), str)
    assert_type(limited(2), bytes)
    assert_type(await alimited(3), int)
    assert_type(await adapted(4), list[int])
    assert_type(breaker.call(guarded, 1), float)
    assert_type(await bulkhead.acall(alimited, 1), int)
    assert_type(breaker.state, resilient.CircuitState)
    assert_type(adaptive.limit, int)
    with breaker, bulkhead:
        pass
    async with breaker, adaptive:
        pass


limiter = resilient.TokenBucket(rate=10.0, capacity=20)
window = resilient.SlidingWindow(limit=100, window=60.0)


@limiter
def rate_limited(x: int, *, y: str = "") -> float:
    return float(x)


@window
async def arate_limited(x: int) -> str:
    return str(x)


@limiter.guard("search", cost=2, max_wait=0.5)
def key_guarded(x: int) -> bytes:
    return b"x" * x


async def check_rate_limiters() -> None:
    assert_type(rate_limited(1, y="a"), float)
    assert_type(await arate_limited(1), str)
    assert_type(key_guarded(2), bytes)
    assert_type(limiter.try_acquire("k"), resilient.Decision)
    assert_type(await window.atry_acquire("k", cost=2), resilient.Decision)
    assert_type(limiter.acquire(max_wait=1.0).retry_after, float)
    assert_type(await window.aacquire("k"), resilient.Decision)
    assert_type(limiter.call(rate_limited, 1), float)
    assert_type(await window.acall(arate_limited, 1), str)


idempotency_store = resilient.stores.MemoryStore()


@resilient.idempotent(store=idempotency_store, key=lambda order_id, amount: order_id)
def charge(order_id: str, amount: int) -> float:
    return float(amount)


@resilient.idempotent(store=idempotency_store, key=lambda order_id, *, amount: order_id)
async def acharge(order_id: str, *, amount: int) -> bytes:
    return order_id.encode()


async def check_idempotent() -> None:
    assert_type(charge("a", 5), float)
    assert_type(charge("a", amount=5), float)
    assert_type(await acharge("a", amount=5), bytes)
    takes_str_int(charge)


def takes_str_int(fn: Callable[[str, int], float]) -> None: ...


fallback = resilient.Fallback(value=0.0)
hedge = resilient.Hedge(0.1)
dlq = resilient.DeadLetterQueue("typing", store=MemoryStore())


@fallback
def degraded(x: int, *, y: str = "") -> float:
    return float(x)


@fallback
async def adegraded(x: int) -> str:
    return str(x)


@hedge
async def hedged(x: int) -> bytes:
    return b"x" * x


@dlq.capture()
def captured(x: int, *, y: str = "") -> float:
    return float(x)


@dlq.capture(on=ValueError, reraise=True)
async def acaptured(x: int) -> str:
    return str(x)


async def check_degradation_and_dead_letters() -> None:
    assert_type(degraded(1, y="a"), float)
    assert_type(await adegraded(1), str)
    assert_type(await hedged(2), bytes)
    assert_type(await hedge.acall(hedged, 3), bytes)
    assert_type(fallback.call(degraded, 1), float)
    assert_type(captured(1, y="a"), float | None)
    assert_type(await acaptured(1), str | None)
    assert_type(dlq.count(), int)
    assert_type(dlq.replay().replayed, int)
    assert_type([entry.attempts for entry in await dlq.alist(10)], list[int])
