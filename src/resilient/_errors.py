"""Exceptions raised by resilient.

Every exception the library raises on purpose derives from `ResilientError`, so one
``except resilient.ResilientError`` catches them all. Retries that run out are the one
deliberate exception to that rule: they re-raise the last exception of the user's function
unchanged.

```
ResilientError
├── DeadlineExceeded            (also a builtin TimeoutError)
├── RetryBudgetExhausted
├── StoreUnavailable
├── Rejected                    (carries ``name`` and ``retry_after``)
│   ├── CircuitOpenError
│   ├── BulkheadFullError
│   └── RateLimitedError
└── IdempotencyError
    ├── IdempotencyInProgress   (carries ``retry_after``)
    ├── IdempotencyKeyReused
    └── IdempotencyLeaseLost
```

A rejection means the guarded call was *not made*: it is always safe to retry a rejected call
after ``retry_after`` seconds.
"""

from __future__ import annotations

__all__ = [
    "BulkheadFullError",
    "CircuitOpenError",
    "DeadlineExceeded",
    "IdempotencyError",
    "IdempotencyInProgress",
    "IdempotencyKeyReused",
    "IdempotencyLeaseLost",
    "RateLimitedError",
    "Rejected",
    "ResilientError",
    "RetryBudgetExhausted",
    "StoreUnavailable",
]


class ResilientError(Exception):
    """Root of every exception that resilient raises itself."""


class DeadlineExceeded(ResilientError, TimeoutError):
    """The deadline in scope passed before the work finished.

    It is also a builtin `TimeoutError`, so code that already handles timeouts keeps working.

    Attributes:
        timeout: the length of the timeout that expired, in seconds, when known.
    """

    def __init__(self, message: str = "deadline exceeded", *, timeout: float | None = None):
        super().__init__(message)
        self.timeout = timeout


class RetryBudgetExhausted(ResilientError):
    """A shared `RetryBudget` refused a retry and there was no earlier exception to re-raise."""


class StoreUnavailable(ResilientError):
    """The state store (for example Redis) could not be reached and ``on_error="raise"``."""


class Rejected(ResilientError):
    """A policy refused to run the call at all; the call had no effect.

    Attributes:
        name: the name of the policy that refused.
        retry_after: seconds after which the same call may succeed (``0.0`` when unknown).
    """

    def __init__(self, name: str, retry_after: float = 0.0, message: str | None = None):
        self.name = name
        self.retry_after = retry_after
        super().__init__(message or self._describe())

    def _describe(self) -> str:
        return f"{self.__class__.__name__}: {self.name!r}, retry after {self.retry_after:.3f}s"

    def __reduce__(self) -> tuple[object, ...]:
        return (self.__class__, (self.name, self.retry_after, str(self)))


class CircuitOpenError(Rejected):
    """The circuit breaker ``name`` is open (or half-open with every trial slot taken)."""

    def _describe(self) -> str:
        return f"circuit {self.name!r} is open; retry after {self.retry_after:.3f}s"


class BulkheadFullError(Rejected):
    """The bulkhead ``name`` has no free slot and no room (or time) to wait for one."""

    def _describe(self) -> str:
        return f"bulkhead {self.name!r} is full; retry after {self.retry_after:.3f}s"


class RateLimitedError(Rejected):
    """The rate limiter ``name`` refused the call.

    Attributes:
        decision: the limiter's `Decision`, when one was made.
    """

    def __init__(
        self,
        name: str,
        retry_after: float = 0.0,
        message: str | None = None,
        *,
        decision: object | None = None,
    ):
        self.decision = decision
        super().__init__(name, retry_after, message)

    def _describe(self) -> str:
        return f"rate limit {self.name!r} exceeded; retry after {self.retry_after:.3f}s"

    def __reduce__(self) -> tuple[object, ...]:
        # The decision travels as state (``__dict__``), so a copy or a pickle keeps it.
        return (
            self.__class__,
            (self.name, self.retry_after, str(self)),
            {"decision": self.decision},
        )


class IdempotencyError(ResilientError):
    """Base class for idempotency-key conflicts."""


class IdempotencyInProgress(IdempotencyError):
    """Another call with the same idempotency key is still running.

    Attributes:
        key: the idempotency key.
        retry_after: seconds until the other call's lease runs out, at the latest.
    """

    def __init__(self, key: str, retry_after: float = 0.0):
        self.key = key
        self.retry_after = retry_after
        super().__init__(f"a call with idempotency key {key!r} is in progress")

    def __reduce__(self) -> tuple[object, ...]:
        return (self.__class__, (self.key, self.retry_after))


class IdempotencyKeyReused(IdempotencyError):
    """The idempotency key was already used with different arguments.

    Attributes:
        key: the idempotency key.
    """

    def __init__(self, key: str):
        self.key = key
        super().__init__(f"idempotency key {key!r} was already used with different arguments")

    def __reduce__(self) -> tuple[object, ...]:
        return (self.__class__, (self.key,))


class IdempotencyLeaseLost(IdempotencyError):
    """The call finished after its lease on the idempotency key had run out.

    Another caller may have claimed the key and run the work meanwhile, so this call's result
    was not stored (the stored result, if any, is the other caller's). The work itself did
    happen: treat it as done and reconcile, do not simply run it again.

    Attributes:
        key: the idempotency key.
    """

    def __init__(self, key: str):
        self.key = key
        super().__init__(
            f"the lease on idempotency key {key!r} ran out before the call finished; "
            "its result was not stored"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (self.__class__, (self.key,))
