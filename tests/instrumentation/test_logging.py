"""The stdlib logging bridge: levels, structured ``extra`` fields, nothing when disabled."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import resilient
from resilient import instrumentation
from resilient._events import HUB
from resilient.instrumentation import (
    CallRejected,
    CircuitStateChanged,
    DeadLettered,
    FallbackUsed,
    IdempotencyLeaseLostEvent,
    RateLimited,
    RetryScheduled,
    StoreError,
)
from resilient.testing import FakeClock


@pytest.fixture
def logging_on() -> Iterator[None]:
    instrumentation.enable_logging()
    yield
    instrumentation.disable_logging()
    assert HUB.active is False


def test_a_breaker_trip_and_retries_log_at_their_levels_with_fields(
    logging_on: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="resilient")
    clock = FakeClock()
    breaker = resilient.CircuitBreaker(
        "payments", failure_rate=None, consecutive_failures=1, clock=clock
    )
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    retry = resilient.Retry(attempts=2, backoff=resilient.Backoff.constant(0.5), clock=clock)
    tries: list[int] = []

    def flaky() -> None:
        tries.append(1)
        if len(tries) == 1:
            raise ConnectionError

    retry.call(flaky)
    records = [r for r in caplog.records if r.name == "resilient"]
    assert [(r.levelname, r.resilient_event.__class__.__name__) for r in records] == [  # type: ignore[attr-defined]
        ("WARNING", "CircuitStateChanged"),
        ("INFO", "RetryScheduled"),
    ]
    state, scheduled = records
    assert state.resilient_policy == "circuit_breaker"  # type: ignore[attr-defined]
    assert state.resilient_name == "payments"  # type: ignore[attr-defined]
    assert state.resilient_old == "closed"  # type: ignore[attr-defined]
    assert state.resilient_new == "open"  # type: ignore[attr-defined]
    assert scheduled.resilient_attempt == 1  # type: ignore[attr-defined]
    assert scheduled.resilient_delay == 0.5  # type: ignore[attr-defined]
    assert isinstance(scheduled.resilient_exception, ConnectionError)  # type: ignore[attr-defined]
    assert scheduled.getMessage().startswith("RetryScheduled retry ")


@pytest.mark.parametrize(
    ("event", "level"),
    [
        (CallRejected("bulkhead", "db", "full", 0.0), "WARNING"),
        (IdempotencyLeaseLostEvent("idempotency", "orders", "k"), "WARNING"),
        (DeadLettered("dead_letter", "q", "1-0", ValueError()), "WARNING"),
        (FallbackUsed("fallback", "f", ValueError()), "INFO"),
        (RateLimited("rate_limiter", "api", "k", 1, 1.0), "DEBUG"),
        (StoreError("rate_limiter", "api", "rate_limit", OSError(), "allow"), "DEBUG"),
    ],
)
def test_levels_by_event(
    logging_on: None, caplog: pytest.LogCaptureFixture, event: object, level: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="resilient")
    HUB.emit(event)  # type: ignore[arg-type]
    assert [r.levelname for r in caplog.records] == [level]


def test_nothing_at_all_when_the_logger_is_disabled(
    logging_on: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.ERROR, logger="resilient")
    built: list[str] = []
    monkeypatch.setattr("resilient.instrumentation._logging._FIELDS", {})
    monkeypatch.setattr(
        "resilient.instrumentation._logging._fields",
        lambda cls: built.append(cls.__name__) or (),
    )
    HUB.emit(CircuitStateChanged("circuit_breaker", "x", "closed", "open"))
    HUB.emit(RetryScheduled("retry", "x", 1, 0.1, None))
    logging.getLogger("resilient").disabled = True
    try:
        caplog.set_level(logging.DEBUG, logger="resilient")
        HUB.emit(CircuitStateChanged("circuit_breaker", "x", "closed", "open"))
    finally:
        logging.getLogger("resilient").disabled = False
    assert caplog.records == []
    assert built == []


def test_enable_logging_takes_the_subscribe_filters(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="resilient")
    instrumentation.enable_logging(name="payments", events=CircuitStateChanged)
    try:
        HUB.emit(CircuitStateChanged("circuit_breaker", "payments", "closed", "open"))
        HUB.emit(CircuitStateChanged("circuit_breaker", "search", "closed", "open"))
        HUB.emit(CallRejected("circuit_breaker", "payments", "open", 1.0))
    finally:
        instrumentation.disable_logging()
    assert [r.resilient_name for r in caplog.records] == ["payments"]  # type: ignore[attr-defined]
