from __future__ import annotations

import dataclasses
import sys
from typing import Any

import pytest

from resilient import instrumentation
from resilient._events import HUB, Event, RetryScheduled


@pytest.fixture
def seen() -> Any:
    events: list[Event] = []
    instrumentation.subscribe(events.append)
    yield events
    instrumentation.unsubscribe(events.append)


def test_hub_is_inactive_without_subscribers() -> None:
    assert HUB.active is False


def test_subscribers_receive_events(seen: list[Event]) -> None:
    assert HUB.active
    event = RetryScheduled("retry", "fetch", attempt=1, delay=0.5, exception=None)
    HUB.emit(event)
    assert seen == [event]


def test_unsubscribe_stops_delivery_and_deactivates() -> None:
    events: list[Event] = []
    instrumentation.subscribe(events.append)
    instrumentation.subscribe(events.append)  # twice is once
    assert len(HUB.subscribers) == 1
    instrumentation.unsubscribe(events.append)
    instrumentation.unsubscribe(events.append)  # unknown: ignored
    HUB.emit(Event("retry", "x"))
    assert events == []
    assert HUB.active is False


def test_events_are_frozen_and_slotted() -> None:
    event = Event("retry", "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.name = "y"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


def test_a_failing_subscriber_does_not_break_others(
    seen: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)

    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    instrumentation.subscribe(broken)
    try:
        HUB.emit(Event("retry", "x"))
    finally:
        instrumentation.unsubscribe(broken)
    assert len(seen) == 1
    assert isinstance(reported[0].exc_value, RuntimeError)


def test_subscribe_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="subscriber"):
        instrumentation.subscribe(42)  # type: ignore[arg-type]


def test_enable_logging_logs_transitions_at_warning_and_retries_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from resilient._events import CircuitStateChanged

    caplog.set_level("DEBUG", logger="resilient")
    instrumentation.enable_logging()
    try:
        HUB.emit(CircuitStateChanged("circuit_breaker", "payments", old="closed", new="open"))
        HUB.emit(RetryScheduled("retry", "fetch", attempt=1, delay=0.5, exception=None))
    finally:
        instrumentation.disable_logging()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "CircuitStateChanged circuit_breaker 'payments': old='closed' new='open'"),
        ("INFO", "RetryScheduled retry 'fetch': attempt=1 delay=0.5 exception=None"),
    ]
    assert HUB.active is False


def test_logging_skips_work_when_the_logger_is_disabled(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR", logger="resilient")
    instrumentation.log_event(
        RetryScheduled("retry", "fetch", attempt=1, delay=0.5, exception=None)
    )
    assert caplog.records == []
