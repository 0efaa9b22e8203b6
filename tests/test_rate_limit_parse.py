"""`TokenBucket.parse` and `SlidingWindow.parse`: rates as people write them."""

from __future__ import annotations

import pytest

from resilient import SlidingWindow, TokenBucket
from resilient.testing import FakeClock


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [
        ("100/minute", 100, 60),
        ("100 per minute", 100, 60),
        ("10/second", 10, 1),
        ("1/SECOND", 1, 1),
        ("1 / Second", 1, 1),
        ("5 per Hours", 5, 3600),
        ("3/day", 3, 86400),
        ("1000/5 minutes", 1000, 300),
        ("7 per 2 hrs", 7, 7200),
        ("10/s", 10, 1),
        ("2/min", 2, 60),
        ("  4 /m ", 4, 60),
        ("1/d", 1, 86400),
    ],
)
def test_parse_reads_count_and_period(text: str, count: int, period: int) -> None:
    bucket = TokenBucket.parse(text)
    assert bucket.capacity == count
    assert bucket.rate == count / period
    window = SlidingWindow.parse(text)
    assert window.limit == count
    assert window.window == float(period)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "10",
        "10/",
        "/minute",
        "1.5/second",
        "0/minute",
        "10/0 minutes",
        "10/month",
        "10/ms",
        "10 perminute",
        "-1/second",
        "10/minute/second",
    ],
)
def test_parse_rejects_what_is_not_a_rate(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket.parse(text)
    with pytest.raises(ValueError, match="rate"):
        SlidingWindow.parse(text)


def test_parse_of_a_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"TokenBucket\.parse takes a str"):
        TokenBucket.parse(100)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"SlidingWindow\.parse takes a str"):
        SlidingWindow.parse(None)  # type: ignore[arg-type]


def test_parse_passes_the_options_to_the_constructor() -> None:
    clock = FakeClock()
    bucket = TokenBucket.parse("2/second", name="api", clock=clock, max_wait=1.5)
    assert (bucket.name, bucket.clock, bucket.max_wait) == ("api", clock, 1.5)
    window = SlidingWindow.parse("2/second", precise=True, name="search", clock=clock)
    assert (window.name, window.precise, window.clock) == ("search", True, clock)


def test_a_parsed_bucket_allows_a_full_burst_then_one_unit_per_period_over_count() -> None:
    clock = FakeClock()
    bucket = TokenBucket.parse("60/minute", clock=clock)
    assert all(bucket.try_acquire("k") for _ in range(60))
    assert not bucket.try_acquire("k")
    clock.advance(1.0)
    assert bucket.try_acquire("k")
    assert not bucket.try_acquire("k")


def test_a_parsed_window_allows_the_count_per_window() -> None:
    clock = FakeClock()
    window = SlidingWindow.parse("3 per minute", precise=True, clock=clock)
    assert [bool(window.try_acquire()) for _ in range(4)] == [True, True, True, False]
    clock.advance(60.0)
    assert window.try_acquire()


def test_a_rate_string_given_to_the_constructor_points_to_parse() -> None:
    with pytest.raises(TypeError, match=r"TokenBucket\.parse\('10/minute'\)") as info:
        TokenBucket(rate="10/minute", capacity=10)  # type: ignore[arg-type]
    assert "per second" in str(info.value)
    assert "number of seconds" not in str(info.value)


def test_a_rate_of_another_type_says_units_per_second() -> None:
    with pytest.raises(TypeError, match="rate must be a number of units per second"):
        TokenBucket(rate=None, capacity=10)  # type: ignore[arg-type]
