"""resilient: resilience patterns for distributed services.

Circuit breakers, timeouts with deadline propagation, retries with jittered backoff and retry
budgets, bulkheads, rate limiters and idempotency keys, for sync code, asyncio and trio. Every
pattern is a policy: a decorator, an explicit ``call`` / ``acall``, and (where it guards a block)
a context manager. `Pipeline` composes policies, outermost first.
"""

from __future__ import annotations

from ._deadline import current_deadline, remaining
from ._errors import (
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
from ._policy import Pipeline, Policy
from ._rate_limit import Decision, SlidingWindow, TokenBucket

__all__ = [
    "BulkheadFullError",
    "CircuitOpenError",
    "DeadlineExceeded",
    "Decision",
    "IdempotencyError",
    "IdempotencyInProgress",
    "IdempotencyKeyReused",
    "Pipeline",
    "Policy",
    "RateLimitedError",
    "Rejected",
    "ResilientError",
    "RetryBudgetExhausted",
    "SlidingWindow",
    "StoreUnavailable",
    "TokenBucket",
    "current_deadline",
    "remaining",
]
