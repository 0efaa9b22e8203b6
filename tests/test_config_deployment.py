"""`load_policies` for deployments: durations, rates, environment variables, named stores,
and errors that always say where the bad value is."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from resilient import CircuitBreaker, SlidingWindow, Timeout, TokenBucket
from resilient.config import load_policies, parse_duration
from resilient.stores import MemoryStore


def _only(config: dict[str, object], **kwargs: object) -> object:
    (policy,) = load_policies({"p": config}, **kwargs)["p"].policies  # type: ignore[arg-type]
    return policy


def _error(config: dict[str, object], **kwargs: object) -> pydantic.ValidationError:
    with pytest.raises(pydantic.ValidationError) as info:
        load_policies({"p": config}, **kwargs)  # type: ignore[arg-type]
    return info.value


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (2, 2.0),
        (0.25, 0.25),
        ("2", 2.0),
        ("0.5", 0.5),
        ("250ms", 0.25),
        ("2s", 2.0),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        ("1m30s", 90.0),
        ("1.5s", 1.5),
        (" 2 s ", 2.0),
    ],
)
def test_durations_are_seconds_or_strings_with_units(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "2x", "s", "1 minute", "2S", "-1s", "1ms2", True, None])
def test_a_bad_duration_says_what_a_duration_is(text: object) -> None:
    with pytest.raises(ValueError, match="a number of seconds or a string with a unit"):
        parse_duration(text)


def test_timeout_accepts_a_duration_string() -> None:
    timeout = _only({"timeout": "2s"})
    assert isinstance(timeout, Timeout)
    assert timeout.seconds == 2.0
    attempt = _only({"attempt_timeout": {"seconds": "250ms"}})
    assert isinstance(attempt, Timeout)
    assert attempt.seconds == 0.25


def test_a_bad_timeout_says_a_number_is_accepted() -> None:
    error = _error({"timeout": "two seconds"})
    assert error.errors()[0]["loc"] == ("p", "timeout", "seconds")
    assert "a number of seconds" in error.errors()[0]["msg"]
    error = _error({"timeout": [2]})
    assert error.errors()[0]["loc"] == ("p", "timeout")
    assert "a number of seconds" in error.errors()[0]["msg"]


def test_durations_are_accepted_in_every_section() -> None:
    pipeline = load_policies(
        {
            "p": {
                "retry": {
                    "max_elapsed": "30s",
                    "max_delay_hint": "1m",
                    "backoff": {"initial": "100ms", "maximum": "5s"},
                    "budget": {"window": "10s"},
                },
                "circuit_breaker": {
                    "open_for": "1m",
                    "slow_call_rate": 0.5,
                    "slow_call_duration": "800ms",
                    "window": {"seconds": "30s"},
                },
                "bulkhead": {"max_concurrent": 2, "max_wait": "50ms"},
                "rate_limiter": {"kind": "sliding_window", "limit": 5, "window": "1m"},
            }
        }
    )["p"]
    retry, breaker, limiter, bulkhead = pipeline.policies
    assert retry.max_elapsed == 30.0  # type: ignore[attr-defined]
    assert retry.max_delay_hint == 60.0  # type: ignore[attr-defined]
    assert isinstance(breaker, CircuitBreaker)
    assert isinstance(limiter, SlidingWindow)
    assert limiter.window == 60.0
    assert bulkhead.max_wait == 0.05  # type: ignore[attr-defined]


# -- rate strings ------------------------------------------------------------------------------


def test_token_bucket_section_takes_a_rate_string() -> None:
    bucket = _only({"rate_limiter": {"kind": "token_bucket", "rate": "100/minute"}})
    assert isinstance(bucket, TokenBucket)
    assert (bucket.rate, bucket.capacity) == (100 / 60, 100)
    smaller_burst = _only(
        {"rate_limiter": {"kind": "token_bucket", "rate": "100 per minute", "capacity": 10}}
    )
    assert isinstance(smaller_burst, TokenBucket)
    assert (smaller_burst.rate, smaller_burst.capacity) == (100 / 60, 10)


def test_sliding_window_section_takes_a_rate_string_instead_of_limit_and_window() -> None:
    window = _only({"rate_limiter": {"kind": "sliding_window", "rate": "100/hour"}})
    assert isinstance(window, SlidingWindow)
    assert (window.limit, window.window) == (100, 3600.0)


@pytest.mark.parametrize(
    ("section", "loc", "words"),
    [
        ({"kind": "token_bucket", "rate": "100/fortnight"}, ("token_bucket", "rate"), "N/unit"),
        ({"kind": "token_bucket", "rate": 5}, ("token_bucket", "capacity"), "required"),
        ({"kind": "token_bucket", "rate": "inf", "capacity": 1}, ("token_bucket", "rate"), "> 0"),
        (
            {"kind": "sliding_window", "rate": "1/second", "limit": 3},
            ("sliding_window", "rate"),
            "not both",
        ),
        ({"kind": "sliding_window", "limit": 3}, ("sliding_window",), "limit and window"),
    ],
)
def test_bad_rates_name_the_field(
    section: dict[str, object], loc: tuple[str, ...], words: str
) -> None:
    error = _error({"rate_limiter": section})
    assert len(error.errors()) == 1
    assert error.errors()[0]["loc"] == ("p", "rate_limiter", *loc)
    assert words in error.errors()[0]["msg"]


# -- environment variables ---------------------------------------------------------------------


def test_environment_variables_are_expanded_in_string_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RESILIENT_TEST_TIMEOUT", "3s")
    monkeypatch.setenv("RESILIENT_TEST_RATE", "20")
    monkeypatch.delenv("RESILIENT_TEST_UNSET", raising=False)
    pipelines = load_policies(
        {
            "a": {"timeout": "${RESILIENT_TEST_TIMEOUT}"},
            "b": {"timeout": "${RESILIENT_TEST_UNSET:-250ms}"},
            "c": {
                "rate_limiter": {
                    "kind": "token_bucket",
                    "rate": "${RESILIENT_TEST_RATE}/minute",
                }
            },
        }
    )
    assert pipelines["a"].policies[0].seconds == 3.0  # type: ignore[attr-defined]
    assert pipelines["b"].policies[0].seconds == 0.25  # type: ignore[attr-defined]
    assert pipelines["c"].policies[0].capacity == 20  # type: ignore[attr-defined]


def test_an_empty_variable_takes_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESILIENT_TEST_EMPTY", "")
    assert _only({"timeout": "${RESILIENT_TEST_EMPTY:-1s}"}).seconds == 1.0  # type: ignore[attr-defined]


def test_a_doubled_dollar_keeps_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from resilient.config import _expand_string

    monkeypatch.setenv("RESILIENT_TEST_X", "x")
    assert _expand_string("$${RESILIENT_TEST_X} ${RESILIENT_TEST_X}") == "${RESILIENT_TEST_X} x"
    assert _expand_string("pa$$word") == "pa$$word"


def test_a_missing_variable_names_the_field_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESILIENT_TEST_UNSET", raising=False)
    error = _error({"retry": {"on": ["ValueError", "${RESILIENT_TEST_UNSET}"]}})
    (only,) = error.errors()
    assert only["loc"] == ("p", "retry", "on", 1)
    assert "RESILIENT_TEST_UNSET is not set" in only["msg"]


def test_a_malformed_reference_is_an_error() -> None:
    error = _error({"timeout": "${RESILIENT_TEST"})
    assert error.errors()[0]["loc"] == ("p", "timeout")
    assert "malformed" in error.errors()[0]["msg"]


# -- named stores ------------------------------------------------------------------------------


def test_sections_use_a_store_passed_by_name() -> None:
    store = MemoryStore()
    pipelines = load_policies(
        {
            "api": {"rate_limiter": {"kind": "token_bucket", "rate": "5/second", "store": "main"}},
            "db": {"circuit_breaker": {"store": "main"}},
        },
        stores={"main": store},
    )
    (limiter,) = pipelines["api"].policies
    (breaker,) = pipelines["db"].policies
    assert isinstance(limiter, TokenBucket)
    assert limiter.store is store
    assert isinstance(breaker, CircuitBreaker)
    assert breaker.store is store


def test_a_named_redis_store_is_shared(redis_url: str) -> None:
    from resilient.stores import RedisStore

    store = RedisStore.from_url(redis_url)
    section = {"kind": "token_bucket", "rate": "1/day", "store": "main"}
    first = load_policies({"shared": {"rate_limiter": section}}, stores={"main": store})
    second = load_policies({"shared": {"rate_limiter": section}}, stores={"main": store})
    a = first["shared"].policies[0]
    b = second["shared"].policies[0]
    assert isinstance(a, TokenBucket)
    assert isinstance(b, TokenBucket)
    assert a.store is store
    key = f"named-store-{id(a)}"
    assert a.try_acquire(key)
    assert not b.try_acquire(key)


def test_an_unknown_store_name_is_an_error_at_its_path() -> None:
    error = _error({"circuit_breaker": {"store": "mian"}}, stores={"main": MemoryStore()})
    (only,) = error.errors()
    assert only["loc"] == ("p", "circuit_breaker", "store")
    assert "'mian'" in only["msg"]
    assert "'main'" in only["msg"]
    error = _error({"rate_limiter": {"kind": "sliding_window", "rate": "1/s", "store": "main"}})
    assert error.errors()[0]["loc"] == ("p", "rate_limiter", "sliding_window", "store")


def test_store_and_redis_url_together_is_an_error() -> None:
    error = _error(
        {"circuit_breaker": {"store": "main", "redis_url": "redis://127.0.0.1:1/0"}},
        stores={"main": MemoryStore()},
    )
    assert error.errors()[0]["loc"] == ("p", "circuit_breaker")
    assert "not both" in error.errors()[0]["msg"]


def test_stores_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="stores"):
        load_policies({}, stores=[MemoryStore()])  # type: ignore[arg-type]


# -- errors that say where -------------------------------------------------------------------


def test_errors_are_titled_by_the_file_or_the_configuration(tmp_path: Path) -> None:
    error = _error({"retry": {"attempts": 0}})
    assert error.title == "policy configuration"
    assert "_PoliciesConfig" not in str(error)
    path = tmp_path / "policies.toml"
    path.write_text("[p.retry]\nattempts = 0\n")
    with pytest.raises(pydantic.ValidationError) as info:
        load_policies(path)
    assert info.value.title == str(path)
    assert str(path) in str(info.value)
    assert info.value.errors()[0]["loc"] == ("p", "retry", "attempts")


def test_a_broken_toml_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[p\ntimeout = 2\n")
    with pytest.raises(ValueError, match=r"broken\.toml") as info:
        load_policies(path)
    assert "TOML" in str(info.value)
    path = tmp_path / "broken.json"
    path.write_text("{")
    with pytest.raises(ValueError, match=r"broken\.json"):
        load_policies(path)


def test_a_misspelled_exception_name_is_one_error() -> None:
    error = _error({"retry": {"on": ["ConectionError"]}})
    (only,) = error.errors()
    assert only["loc"] == ("p", "retry", "on", 0)
    assert "ConectionError" in only["msg"]


def test_an_empty_exception_list_is_still_an_error() -> None:
    error = _error({"retry": {"on": []}})
    assert error.errors()[0]["loc"] == ("p", "retry", "on")


@pytest.mark.parametrize(
    ("config", "loc"),
    [
        ({"circuit_breaker": {"open_for": float("inf")}}, ("circuit_breaker", "open_for")),
        (
            {"circuit_breaker": {"window": {"seconds": float("inf")}}},
            ("circuit_breaker", "window", "seconds"),
        ),
        ({"circuit_breaker": {"failure_rate": None}}, ("circuit_breaker", "failure_rate")),
        (
            {"circuit_breaker": {"slow_call_rate": 0.5}},
            ("circuit_breaker", "slow_call_duration"),
        ),
        (
            {"rate_limiter": {"kind": "token_bucket", "rate": 1e-9, "capacity": 10**9}},
            ("rate_limiter", "token_bucket", "capacity"),
        ),
        (
            {"rate_limiter": {"kind": "sliding_window", "limit": 1, "window": 1e-7}},
            ("rate_limiter", "sliding_window", "window"),
        ),
        (
            {"rate_limiter": {"kind": "sliding_window", "limit": 1, "window": "36000000d"}},
            ("rate_limiter", "sliding_window", "window"),
        ),
    ],
)
def test_values_a_constructor_rejects_are_validation_errors_with_the_path(
    config: dict[str, object], loc: tuple[str, ...]
) -> None:
    error = _error(config)
    (only,) = error.errors()
    assert only["loc"] == ("p", *loc)


def test_constructor_errors_of_several_pipelines_are_reported_together() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        load_policies(
            {
                "a": {"circuit_breaker": {"failure_rate": None}},
                "b": {"rate_limiter": {"kind": "sliding_window", "limit": 1, "window": 1e-9}},
            }
        )
    assert [e["loc"][0] for e in info.value.errors()] == ["a", "b"]


def test_pipeline_config_build_reports_constructor_errors_from_the_section() -> None:
    from resilient.config import PipelineConfig

    class NotAStore:
        pass

    config = PipelineConfig.model_validate(
        {"circuit_breaker": {"store": "odd"}}, context={"stores": {"odd": NotAStore()}}
    )
    with pytest.raises(pydantic.ValidationError) as info:
        config.build("p")
    assert info.value.errors()[0]["loc"] == ("circuit_breaker", "store")


@pytest.mark.parametrize(
    ("window", "loc"),
    [
        ({"seconds": -1}, ("window", "seconds")),
        ({"seconds": "30s", "size": 10}, ("window", "size")),
        ({"size": 0}, ("window", "size")),
        (30, ("window",)),
    ],
)
def test_a_bad_breaker_window_is_one_error(window: object, loc: tuple[str, ...]) -> None:
    error = _error({"circuit_breaker": {"window": window}})
    (only,) = error.errors()
    assert only["loc"] == ("p", "circuit_breaker", *loc)


def test_variables_are_expanded_inside_tuples_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESILIENT_TEST_ERROR", "ConnectionError")
    (retry,) = load_policies({"p": {"retry": {"on": ("${RESILIENT_TEST_ERROR}",)}}})["p"]
    assert retry.on == (ConnectionError,)  # type: ignore[attr-defined]
