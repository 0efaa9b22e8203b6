from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient import Backoff

seconds = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
seeds = st.integers(min_value=0, max_value=2**32)
attempt_numbers = st.integers(min_value=1, max_value=200)


def first(backoff: Backoff, n: int) -> list[float]:
    return list(itertools.islice(backoff.delays(), n))


def test_exponential_without_jitter_doubles_up_to_the_maximum() -> None:
    backoff = Backoff.exponential(0.1, 1.0, jitter="none")
    assert first(backoff, 6) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_exponential_uses_the_multiplier() -> None:
    backoff = Backoff.exponential(1.0, 100.0, multiplier=3.0, jitter="none")
    assert first(backoff, 4) == pytest.approx([1.0, 3.0, 9.0, 27.0])


def test_constant_and_linear_without_jitter() -> None:
    assert first(Backoff.constant(0.5), 3) == [0.5, 0.5, 0.5]
    assert first(Backoff.linear(1.0, 0.5, 2.0), 4) == pytest.approx([1.0, 1.5, 2.0, 2.0])


def test_huge_attempt_numbers_do_not_overflow() -> None:
    backoff = Backoff.exponential(0.1, 10.0, multiplier=10.0, jitter="none")
    assert backoff.delay(10_000) == 10.0


def test_delay_n_matches_the_iterator_for_stateless_jitters() -> None:
    backoff = Backoff.exponential(0.1, 5.0, jitter="none")
    assert [backoff.delay(n) for n in range(1, 8)] == first(backoff, 7)


def test_injected_rng_makes_delays_reproducible() -> None:
    a = Backoff.exponential(0.1, 10.0, rng=random.Random(3))
    b = Backoff.exponential(0.1, 10.0, rng=random.Random(3))
    assert first(a, 20) == first(b, 20)


def test_full_jitter_spreads_delays_over_the_whole_range() -> None:
    backoff = Backoff.exponential(1.0, 1.0, rng=random.Random(1))
    delays = first(backoff, 2000)
    assert min(delays) < 0.05
    assert max(delays) > 0.95
    assert 0.45 < sum(delays) / len(delays) < 0.55


@given(
    initial=seconds, extra=seconds, multiplier=st.floats(1.0, 4.0), seed=seeds, n=attempt_numbers
)
def test_full_jitter_is_between_zero_and_the_capped_exponential(
    initial: float, extra: float, multiplier: float, seed: int, n: int
) -> None:
    maximum = initial + extra
    backoff = Backoff.exponential(initial, maximum, multiplier, "full", rng=random.Random(seed))
    cap = min(maximum, initial * multiplier ** min(n - 1, 2000)) if multiplier > 1 else initial
    assert 0.0 <= backoff.delay(n) <= min(cap, maximum)


@given(initial=seconds, extra=seconds, seed=seeds, n=attempt_numbers)
def test_equal_jitter_is_between_half_and_all_of_the_capped_exponential(
    initial: float, extra: float, seed: int, n: int
) -> None:
    maximum = initial + extra
    backoff = Backoff.exponential(initial, maximum, jitter="equal", rng=random.Random(seed))
    base = backoff.base(n)
    assert base == min(maximum, initial * 2.0 ** min(n - 1, 2000))
    assert base / 2 <= backoff.delay(n) <= base <= maximum


@given(initial=seconds, extra=seconds, seed=seeds)
def test_decorrelated_jitter_follows_min_cap_uniform_base_previous_times_three(
    initial: float, extra: float, seed: int
) -> None:
    maximum = initial + extra
    backoff = Backoff.exponential(initial, maximum, jitter="decorrelated", rng=random.Random(seed))
    previous = initial
    for delay in first(backoff, 30):
        assert delay <= maximum
        assert delay >= min(initial, maximum)
        assert delay <= max(previous * 3, initial)
        previous = delay


@given(initial=seconds, step=seconds, extra=seconds, seed=seeds, n=attempt_numbers)
def test_linear_full_jitter_stays_below_the_capped_line(
    initial: float, step: float, extra: float, seed: int, n: int
) -> None:
    maximum = initial + extra
    backoff = Backoff.linear(initial, step, maximum, jitter="full", rng=random.Random(seed))
    assert 0.0 <= backoff.delay(n) <= min(maximum, initial + step * (n - 1))


@pytest.mark.parametrize(
    ("build", "argument"),
    [
        (lambda: Backoff.exponential(-1.0, 1.0), "initial"),
        (lambda: Backoff.exponential(1.0, 0.5), "maximum"),
        (lambda: Backoff.exponential(0.1, 1.0, multiplier=0.5), "multiplier"),
        (lambda: Backoff.exponential(0.1, 1.0, jitter="ful"), "jitter"),
        (lambda: Backoff.constant(-0.1), "delay"),
        (lambda: Backoff.linear(0.1, -1.0, 1.0), "step"),
        (lambda: Backoff.linear(2.0, 1.0, 1.0), "maximum"),
        (lambda: Backoff.exponential(float("nan"), 1.0), "initial"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(build: object, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        build()  # type: ignore[operator]


def test_rng_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="rng"):
        Backoff.constant(1.0, rng=42)  # type: ignore[arg-type]


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="attempt"):
        Backoff.constant(1.0).delay(0)


def test_backoffs_compare_by_value_and_repr_round_trips() -> None:
    backoff = Backoff.exponential(0.1, 10.0, jitter="equal")
    assert backoff == Backoff.exponential(0.1, 10.0, jitter="equal")
    assert backoff != Backoff.exponential(0.1, 10.0)
    assert eval(repr(backoff), {"Backoff": Backoff}) == backoff
    assert eval(repr(Backoff.linear(1, 2, 3)), {"Backoff": Backoff}) == Backoff.linear(1, 2, 3)


def test_a_zero_initial_exponential_backoff_stays_zero_even_when_the_exponent_overflows() -> None:
    backoff = Backoff.exponential(0.0, 10.0, jitter="none")
    assert backoff.delay(10) == 0.0
    assert backoff.delay(2000) == 0.0
