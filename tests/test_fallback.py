"""Fallback: matching failures and rejections become a fallback value or a handler's result."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from resilient import (
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    DeadlineExceeded,
    Fallback,
    Pipeline,
    RateLimitedError,
    Retry,
    timeout,
)
from resilient._events import Event, FallbackUsed
from resilient.config import load_policies
from resilient.instrumentation import subscribe, unsubscribe
from resilient.testing import FakeClock, no_waiting

# Every test on the C guarded call (resilient._speedups.RetryCall) and on the Python one.
pytestmark = pytest.mark.usefixtures("retry_impl")


class Down(Exception):
    pass


def failing() -> str:
    raise Down("service down")


def healthy() -> str:
    return "real"


async def afailing() -> str:
    raise Down("service down")


async def ahealthy() -> str:
    return "real"


class Flaky:
    """A dependency that is down until told otherwise."""

    def __init__(self) -> None:
        self.down = True
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.down:
            raise Down("down")
        return "real"

    async def acall(self) -> str:
        return self()


def test_pipeline_returns_the_fallback_while_the_breaker_is_open_and_the_result_after() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("orders", minimum_calls=2, open_for=30.0, clock=clock)
    pipeline = Pipeline(Fallback(value="cached"), breaker, Retry(attempts=2, clock=clock))
    service = Flaky()
    with no_waiting():
        assert pipeline.call(service) == "cached"  # two attempts fail, one breaker failure
        assert pipeline.call(service) == "cached"  # the second failure opens the breaker
        assert breaker.state.value == "open"
        calls = service.calls
        assert pipeline.call(service) == "cached"  # CircuitOpenError, answered by the fallback
        assert service.calls == calls  # the open breaker did not call the service
        service.down = False
        assert pipeline.call(service) == "cached"  # still open
        clock.advance(30.0)
        assert pipeline.call(service) == "real"  # the trial succeeds and closes the breaker
        assert breaker.state.value == "closed"
        assert pipeline.call(service) == "real"


async def test_async_pipeline_returns_the_fallback_while_the_breaker_is_open() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("orders", minimum_calls=1, open_for=10.0, clock=clock)
    pipeline = Pipeline(Fallback(value="cached"), breaker, Retry(attempts=2, clock=clock))
    service = Flaky()
    with no_waiting():
        assert await pipeline.acall(service.acall) == "cached"
        assert breaker.state.value == "open"
        service.down = False
        assert await pipeline.acall(service.acall) == "cached"
        clock.advance(10.0)
        assert await pipeline.acall(service.acall) == "real"
        assert breaker.state.value == "closed"


def test_success_returns_the_real_result_and_emits_nothing() -> None:
    events: list[Event] = []
    subscribe(events.append)
    try:
        assert Fallback(value="x").call(healthy) == "real"
        assert Fallback(value="x")(healthy)() == "real"
    finally:
        unsubscribe(events.append)
    assert events == []


def test_value_and_handler_on_sync_calls() -> None:
    assert Fallback(value=None).call(failing) is None
    assert Fallback([]).call(failing) == []
    seen: list[BaseException] = []

    def handler(exc: BaseException) -> str:
        seen.append(exc)
        return f"fallback for {exc}"

    assert Fallback(handler=handler).call(failing) == "fallback for service down"
    assert isinstance(seen[0], Down)


async def test_sync_and_async_handlers_on_async_calls() -> None:
    async def ahandler(exc: BaseException) -> str:
        await anyio.sleep(0)
        return f"async {type(exc).__name__}"

    assert await Fallback(handler=ahandler).acall(afailing) == "async Down"
    assert await Fallback(handler=lambda exc: "sync").acall(afailing) == "sync"
    assert await Fallback(value=0).acall(afailing) == 0
    assert await Fallback(value=0).acall(ahealthy) == "real"


def test_an_async_handler_on_a_sync_call_is_a_type_error() -> None:
    async def ahandler(exc: BaseException) -> str:
        return "x"

    with pytest.raises(TypeError, match="async") as caught:
        Fallback(handler=ahandler).call(failing)
    assert isinstance(caught.value.__cause__, Down)


def test_a_handler_that_raises_propagates_its_error() -> None:
    def handler(exc: BaseException) -> str:
        raise ValueError("handler broke") from exc

    with pytest.raises(ValueError, match="handler broke"):
        Fallback(handler=handler).call(failing)


@pytest.mark.parametrize(
    "rejection",
    [
        CircuitOpenError("c", 1.0),
        BulkheadFullError("b"),
        RateLimitedError("r", 2.0),
        DeadlineExceeded(),
    ],
)
def test_rejections_are_replaced(rejection: Exception) -> None:
    def rejected() -> str:
        raise rejection

    assert Fallback(value="degraded").call(rejected) == "degraded"


async def test_an_exceeded_timeout_inside_is_replaced() -> None:
    async def slow() -> str:
        await anyio.sleep(30)
        return "late"

    async def guarded() -> str:
        async with timeout(0.01):
            return await slow()

    assert await Fallback(value="degraded").acall(guarded) == "degraded"


def test_exceptions_outside_on_propagate_unchanged() -> None:
    error = KeyError("k")

    def raises() -> None:
        raise error

    with pytest.raises(KeyError) as caught:
        Fallback(value=1, on=(Down, ValueError)).call(raises)
    assert caught.value is error
    assert Fallback(value=1, on=lambda exc: isinstance(exc, KeyError)).call(raises) == 1


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(1), asyncio.CancelledError()])
def test_never_replaces_interrupts_and_cancellation(error: BaseException) -> None:
    def raises() -> None:
        raise error

    with pytest.raises(type(error)):
        Fallback(value=1, on=BaseException).call(raises)
    with pytest.raises(type(error)):
        Fallback(value=1, on=BaseException)(raises)()


async def test_never_replaces_cancellation_on_either_backend() -> None:
    reached = False

    async def cancelled_inside() -> None:
        await anyio.sleep(30)

    with anyio.move_on_after(0.01):
        await Fallback(value=1, on=BaseException).acall(cancelled_inside)
        reached = True
    assert not reached


def test_fallback_used_events_name_the_function() -> None:
    events: list[Event] = []
    subscribe(events.append)
    try:
        Fallback(value=1)(failing)()
        Fallback(value=1, name="orders").call(failing)
    finally:
        unsubscribe(events.append)
    used = [e for e in events if isinstance(e, FallbackUsed)]
    assert [(e.policy, e.name) for e in used] == [("fallback", "failing"), ("fallback", "orders")]
    assert all(isinstance(e.exception, Down) for e in used)


async def test_decorating_async_keeps_the_signature_and_metadata() -> None:
    @Fallback(value="x")
    async def get(key: str) -> str:
        """Get it."""
        raise Down(key)

    assert get.__name__ == "get"
    assert get.__doc__ == "Get it."
    assert await get("k") == "x"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, TypeError, "value or a handler"),
        ({"value": 1, "handler": str}, TypeError, "not both"),
        ({"handler": 3}, TypeError, "handler"),
        ({"value": 1, "on": 3}, TypeError, "on"),
        ({"value": 1, "on": (Down, int)}, TypeError, "on"),
        ({"value": 1, "name": 3}, TypeError, "name"),
    ],
)
def test_bad_arguments_are_named(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        Fallback(**kwargs)


def test_config_fallback_section_builds_the_outermost_policy() -> None:
    pipelines = load_policies(
        {"p": {"retry": {"attempts": 1}, "fallback": {"value": [], "on": ["ConnectionError"]}}}
    )
    pipeline = pipelines["p"]
    first = pipeline.policies[0]
    assert isinstance(first, Fallback)
    assert first.name == "p"

    def refused() -> None:
        raise ConnectionRefusedError

    assert pipeline.call(refused) == []
    with pytest.raises(Down):
        pipeline.call(failing)


def test_config_fallback_section_errors_name_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        load_policies({"p": {"fallback": {}}})
    assert caught.value.errors()[0]["loc"] == ("p", "fallback", "value")
    with pytest.raises(ValidationError) as caught:
        load_policies({"p": {"fallback": {"value": 1, "on": ["no.such.Error"]}}})
    assert caught.value.errors()[0]["loc"][:3] == ("p", "fallback", "on")
