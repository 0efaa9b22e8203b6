"""resilient: resilience patterns for distributed services.

Circuit breakers, timeouts with deadline propagation, retries with jittered backoff and retry
budgets, bulkheads, rate limiters and idempotency keys, for sync code, asyncio and trio. Every
pattern is a policy: a decorator, an explicit ``call`` / ``acall``, and (where it guards a block)
a context manager. `Pipeline` composes policies, outermost first.
"""

from __future__ import annotations

from ._adaptive import AdaptiveBulkhead
from ._backoff import Backoff
from ._budget import RetryBudget
from ._bulkhead import Bulkhead
from ._circuit_breaker import CircuitBreaker, CircuitState, CountWindow, TimeWindow
from ._deadline import current_deadline, remaining
from ._errors import (
    BulkheadFullError,
    CircuitOpenError,
    DeadlineExceeded,
    IdempotencyError,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    IdempotencyLeaseLost,
    RateLimitedError,
    Rejected,
    ResilientError,
    RetryBudgetExhausted,
    StoreUnavailable,
)
from ._fallback import Fallback
from ._hedge import Hedge
from ._policy import Pipeline, Policy
from ._rate_limit import Decision, SlidingWindow, TokenBucket
from ._retry import Retry, retry
from ._timeout import Timeout, timeout

__all__ = [
    "AdaptiveBulkhead",
    "Backoff",
    "Bulkhead",
    "BulkheadFullError",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "CountWindow",
    "DeadlineExceeded",
    "Decision",
    "Fallback",
    "Hedge",
    "IdempotencyError",
    "IdempotencyInProgress",
    "IdempotencyKeyReused",
    "IdempotencyLeaseLost",
    "Pipeline",
    "Policy",
    "RateLimitedError",
    "Rejected",
    "ResilientError",
    "Retry",
    "RetryBudget",
    "RetryBudgetExhausted",
    "SlidingWindow",
    "StoreUnavailable",
    "TimeWindow",
    "Timeout",
    "TokenBucket",
    "current_deadline",
    "remaining",
    "retry",
    "timeout",
]
