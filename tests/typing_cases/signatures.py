"""Checked by mypy --strict in test_typing.py: decorators keep the signatures they wrap."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from typing_extensions import assert_type

import resilient


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


limiter = resilient.TokenBucket(rate=10.0, capacity=20)
window = resilient.SlidingWindow(limit=100, window=60.0)


@limiter
def limited(x: int, *, y: str = "") -> float:
    return float(x)


@window
async def alimited(x: int) -> str:
    return str(x)


@limiter.guard("search", cost=2, max_wait=0.5)
def guarded(x: int) -> bytes:
    return b"x" * x


async def check_rate_limiters() -> None:
    assert_type(limited(1, y="a"), float)
    assert_type(await alimited(1), str)
    assert_type(guarded(2), bytes)
    assert_type(limiter.try_acquire("k"), resilient.Decision)
    assert_type(await window.atry_acquire("k", cost=2), resilient.Decision)
    assert_type(limiter.acquire(max_wait=1.0).retry_after, float)
    assert_type(await window.aacquire("k"), resilient.Decision)
    assert_type(limiter.call(limited, 1), float)
    assert_type(await window.acall(alimited, 1), str)
