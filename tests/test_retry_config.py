"""The ``retry``, ``timeout`` and ``attempt_timeout`` sections of `load_policies`."""

from __future__ import annotations

import pydantic
import pytest

from resilient import Backoff, DeadlineExceeded, Retry, RetryBudget, Timeout
from resilient.config import load_policies
from resilient.testing import no_waiting


def test_timeout_accepts_a_bare_number_or_a_mapping() -> None:
    pipelines = load_policies({"a": {"timeout": 2}, "b": {"timeout": {"seconds": 0.5}}})
    (a,) = pipelines["a"].policies
    (b,) = pipelines["b"].policies
    assert isinstance(a, Timeout)
    assert a.seconds == 2.0
    assert a.name == "a"
    assert isinstance(b, Timeout)
    assert b.seconds == 0.5


def test_sections_nest_timeout_retry_attempt_timeout() -> None:
    pipeline = load_policies(
        {"payments": {"attempt_timeout": 0.5, "retry": {"attempts": 4}, "timeout": 2.0}}
    )["payments"]
    kinds = [type(p) for p in pipeline.policies]
    assert kinds == [Timeout, Retry, Timeout]
    _overall, retry, per_attempt = pipeline.policies
    assert isinstance(retry, Retry)
    assert retry.attempts_limit == 4
    assert retry.name == "payments"
    assert isinstance(per_attempt, Timeout)
    assert per_attempt.seconds == 0.5


def test_retry_section_builds_backoff_budget_and_exception_types() -> None:
    pipeline = load_policies(
        {
            "api": {
                "retry": {
                    "on": ["ConnectionError", "resilient.DeadlineExceeded"],
                    "attempts": None,
                    "max_elapsed": 30,
                    "backoff": {"kind": "linear", "initial": 0.5, "step": 0.5, "maximum": 2},
                    "budget": {"ratio": 0.1},
                    "max_delay_hint": 5,
                }
            }
        }
    )["api"]
    (retry,) = pipeline.policies
    assert isinstance(retry, Retry)
    assert retry.on == (ConnectionError, DeadlineExceeded)
    assert retry.attempts_limit is None
    assert retry.max_elapsed == 30.0
    assert retry.backoff == Backoff.linear(0.5, 0.5, 2.0)
    assert isinstance(retry.budget, RetryBudget)
    assert retry.budget.ratio == 0.1
    assert retry.max_delay_hint == 5.0


def test_configured_retry_retries_only_the_listed_exceptions() -> None:
    pipeline = load_policies({"api": {"retry": {"on": ["ConnectionError"], "attempts": 2}}})["api"]
    calls = []

    def fail(error: type[BaseException]) -> None:
        calls.append(error)
        raise error

    with no_waiting():
        with pytest.raises(ConnectionError):
            pipeline.call(fail, ConnectionError)
        with pytest.raises(KeyError):
            pipeline.call(fail, KeyError)
    assert calls == [ConnectionError, ConnectionError, KeyError]


@pytest.mark.parametrize(
    ("config", "loc"),
    [
        ({"retry": {"attempts": 0}}, ("p", "retry", "attempts")),
        ({"retry": {"on": ["no.such.module.Error"]}}, ("p", "retry", "on", 0)),
        ({"retry": {"on": ["ValueError", "os.path"]}}, ("p", "retry", "on", 1)),
        ({"retry": {"on": ["json.dumps"]}}, ("p", "retry", "on", 0)),
        ({"retry": {"backoff": {"jitter": "lots"}}}, ("p", "retry", "backoff", "jitter")),
        ({"retry": {"backoff": {"initial": 5, "maximum": 1}}}, ("p", "retry", "backoff")),
        ({"retry": {"backoff": {"kind": "constant", "initial": 2}}}, ("p", "retry", "backoff")),
        ({"retry": {"backoff": {"delay": 2}}}, ("p", "retry", "backoff")),
        ({"retry": {"on": []}}, ("p", "retry", "on")),
        ({"retry": {"budget": {"window": 0}}}, ("p", "retry", "budget", "window")),
        ({"retry": {"on_result": "x"}}, ("p", "retry", "on_result")),
        ({"timeout": -1}, ("p", "timeout", "seconds")),
        ({"timeout": {"second": 1}}, ("p", "timeout", "seconds")),
        ({"attempt_timeout": 0}, ("p", "attempt_timeout", "seconds")),
    ],
)
def test_invalid_sections_name_the_field_path(
    config: dict[str, object], loc: tuple[object, ...]
) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        load_policies({"p": config})
    assert info.value.errors()[0]["loc"] == loc
