from __future__ import annotations

import threading

import pytest

from resilient._clock import SYSTEM_CLOCK, Clock, check_clock, switches
from resilient.testing import FakeClock, no_waiting


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(start=10.0)
    assert clock.monotonic() == 10.0
    clock.advance(2.5)
    assert clock.monotonic() == 12.5


def test_fake_clock_sleep_advances_instantly_and_is_recorded() -> None:
    clock = FakeClock()
    clock.sleep(3.0)
    clock.sleep(-1.0)
    assert clock.monotonic() == 3.0
    assert clock.sleeps == [3.0, 0.0]


async def test_fake_clock_async_sleep_advances_instantly() -> None:
    clock = FakeClock()
    await clock.asleep(60.0)
    assert clock.monotonic() == 60.0


def test_fake_clock_rejects_going_backwards() -> None:
    with pytest.raises(ValueError, match="seconds"):
        FakeClock().advance(-1)


def test_fake_clock_is_thread_safe() -> None:
    clock = FakeClock()

    def work() -> None:
        for _ in range(1000):
            clock.advance(1.0)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock.monotonic() == 8000.0


def test_clocks_satisfy_the_protocol() -> None:
    assert isinstance(FakeClock(), Clock)
    assert isinstance(SYSTEM_CLOCK, Clock)
    assert check_clock(None) is SYSTEM_CLOCK
    with pytest.raises(TypeError, match="clock"):
        check_clock(object())


def test_no_waiting_nests_and_resets() -> None:
    assert switches.no_waiting == 0
    with no_waiting():
        with no_waiting():
            assert switches.no_waiting == 2
        assert switches.no_waiting == 1
    assert switches.no_waiting == 0


def test_no_waiting_resets_after_an_exception() -> None:
    with pytest.raises(RuntimeError), no_waiting():
        raise RuntimeError
    assert switches.no_waiting == 0


def test_system_clock_is_monotonic() -> None:
    first = SYSTEM_CLOCK.monotonic()
    assert SYSTEM_CLOCK.monotonic() >= first


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -1.0])
def test_advance_refuses_nan_infinite_and_negative_seconds(seconds: float) -> None:
    clock = FakeClock(5.0)
    with pytest.raises(ValueError, match="seconds must be >= 0 and finite"):
        clock.advance(seconds)
    assert clock.monotonic() == 5.0


def test_advance_refuses_a_non_number() -> None:
    with pytest.raises(TypeError, match="seconds must be a number"):
        FakeClock().advance("1")  # type: ignore[arg-type]


@pytest.mark.parametrize("seconds", [float("nan"), float("inf")])
def test_sleep_refuses_nan_and_infinite_seconds(seconds: float) -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="seconds must be a finite number"):
        clock.sleep(seconds)
    assert clock.monotonic() == 0.0
