from __future__ import annotations

import copy

import pytest

import resilient
from resilient import (
    BulkheadFullError,
    CircuitOpenError,
    DeadlineExceeded,
    IdempotencyError,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    RateLimitedError,
    Rejected,
    ResilientError,
    RetryBudgetExhausted,
    StoreUnavailable,
)


@pytest.mark.parametrize(
    "error",
    [
        DeadlineExceeded(),
        RetryBudgetExhausted(),
        StoreUnavailable("redis down"),
        CircuitOpenError("payments", 3.0),
        BulkheadFullError("db", 0.5),
        RateLimitedError("api", 1.0),
        IdempotencyInProgress("k", 2.0),
        IdempotencyKeyReused("k"),
    ],
)
def test_every_error_is_a_resilient_error(error: Exception) -> None:
    assert isinstance(error, ResilientError)


def test_deadline_exceeded_is_a_builtin_timeout_error() -> None:
    with pytest.raises(TimeoutError):
        raise DeadlineExceeded(timeout=2.0)
    assert DeadlineExceeded(timeout=2.0).timeout == 2.0


@pytest.mark.parametrize("cls", [CircuitOpenError, BulkheadFullError, RateLimitedError])
def test_rejections_carry_name_and_retry_after(cls: type[Rejected]) -> None:
    error = cls("payments", 1.5)
    assert isinstance(error, Rejected)
    assert error.name == "payments"
    assert error.retry_after == 1.5
    assert "payments" in str(error)


def test_rate_limited_error_carries_the_decision() -> None:
    decision = object()
    assert RateLimitedError("api", 1.0, decision=decision).decision is decision


def test_idempotency_errors_share_a_base() -> None:
    assert issubclass(IdempotencyInProgress, IdempotencyError)
    assert issubclass(IdempotencyKeyReused, IdempotencyError)
    assert IdempotencyInProgress("k", 4.0).retry_after == 4.0
    assert IdempotencyKeyReused("k").key == "k"


@pytest.mark.parametrize(
    "error",
    [CircuitOpenError("c", 1.0), IdempotencyInProgress("k", 2.0), IdempotencyKeyReused("k")],
)
def test_errors_with_required_arguments_can_be_reconstructed(error: Exception) -> None:
    # copy, multiprocessing and executors rebuild exceptions through __reduce__.
    clone = copy.copy(error)
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    assert clone.args == error.args


def test_module_docstring_draws_the_tree() -> None:
    doc = resilient._errors.__doc__ or ""
    for name in ("ResilientError", "DeadlineExceeded", "CircuitOpenError", "IdempotencyKeyReused"):
        assert name in doc


def test_a_rate_limited_error_keeps_its_decision_through_pickle_and_copy() -> None:
    import pickle

    decision = resilient.Decision(False, 5, 0, 1.5, 2.0)
    error = resilient.RateLimitedError("api", 1.5, decision=decision)
    # Only the exception object itself, made here, is round-tripped: never stored data.
    for again in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):
        assert again.decision == decision
        assert again.name == "api"
        assert again.retry_after == 1.5
        assert str(again) == str(error)
