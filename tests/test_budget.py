from __future__ import annotations

import threading

import pytest

from resilient import RetryBudget, RetryBudgetExhausted
from resilient.testing import FakeClock


def test_minimum_allows_retries_without_calls() -> None:
    budget = RetryBudget(ratio=0.0, minimum_per_second=1.0, window=5.0, clock=FakeClock())
    assert [budget.try_withdraw() for _ in range(7)] == [True] * 5 + [False] * 2


def test_ratio_of_calls_bounds_retries() -> None:
    budget = RetryBudget(ratio=0.25, minimum_per_second=0.0, window=10.0, clock=FakeClock())
    for _ in range(40):
        budget.deposit()
    assert sum(budget.try_withdraw() for _ in range(100)) == 10
    assert (budget.calls, budget.retries) == (40, 10)


def test_old_calls_and_retries_slide_out_of_the_window() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=1.0, minimum_per_second=0.0, window=10.0, clock=clock)
    budget.deposit()
    assert budget.try_withdraw()
    assert not budget.try_withdraw()
    clock.advance(5.0)
    assert not budget.try_withdraw()  # still within the window
    clock.advance(5.0)
    assert (budget.calls, budget.retries) == (0, 0)
    assert not budget.try_withdraw()
    budget.deposit()
    assert budget.try_withdraw()


def test_a_long_idle_gap_clears_every_bucket() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.5, minimum_per_second=0.0, window=1.0, clock=clock)
    for _ in range(10):
        budget.deposit()
        clock.advance(0.1)
    clock.advance(1000.0)
    assert budget.calls == 0


def test_withdraw_raises_retry_budget_exhausted() -> None:
    budget = RetryBudget(ratio=0.0, minimum_per_second=0.0, clock=FakeClock())
    with pytest.raises(RetryBudgetExhausted, match="retry budget exhausted"):
        budget.withdraw()


def test_threads_never_overdraw_the_budget() -> None:
    budget = RetryBudget(ratio=0.1, minimum_per_second=0.0, window=10.0, clock=FakeClock())
    for _ in range(1000):
        budget.deposit()
    granted: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = [budget.try_withdraw() for _ in range(100)]
        with lock:
            granted.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 100


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"ratio": -0.1}, "ratio"),
        ({"minimum_per_second": -1.0}, "minimum_per_second"),
        ({"window": 0.0}, "window"),
        ({"window": float("inf")}, "window"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(
    kwargs: dict[str, float], argument: str
) -> None:
    with pytest.raises(ValueError, match=argument):
        RetryBudget(**kwargs)  # type: ignore[arg-type]


def test_clock_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="clock"):
        RetryBudget(clock=object())


@pytest.mark.parametrize("window", [1e-323, 1e-320, 5e-7])
def test_a_window_under_a_microsecond_is_a_value_error(window: float) -> None:
    with pytest.raises(ValueError, match="window must be at least 1e-06"):
        RetryBudget(window=window)


def test_the_shortest_window_works_at_any_clock_reading() -> None:
    for start in (0.0, 123.456, 1e9, 1e12):
        budget = RetryBudget(window=1e-6, clock=FakeClock(start))
        budget.deposit()
        assert budget.try_withdraw()
