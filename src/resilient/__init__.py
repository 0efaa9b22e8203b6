"""resilient: resilience patterns for distributed services.

Circuit breakers, timeouts with deadline propagation, retries with jittered backoff and retry
budgets, bulkheads, rate limiters and idempotency keys, for sync code, asyncio and trio. Every
pattern is a policy: a decorator, an explicit ``call`` / ``acall``, and (where it guards a block)
a context manager. `Pipeline` composes policies, outermost first.

The subpackages ``resilient.config``, ``.instrumentation``, ``.integrations``, ``.stores`` and
``.testing`` are attributes of the package, imported on first use.
"""

from __future__ import annotations

from importlib import import_module as _import_module
from typing import TYPE_CHECKING, Any

from ._adaptive import AdaptiveBulkhead
from ._backoff import Backoff
from ._budget import RetryBudget
from ._bulkhead import Bulkhead
from ._circuit_breaker import CircuitBreaker, CircuitState, CountWindow, TimeWindow
from ._dead_letter import DeadLetterQueue
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
from ._idempotency import idempotent
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
    "DeadLetterQueue",
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
    "idempotent",
    "remaining",
    "retry",
    "timeout",
]

#: Subpackages reachable as attributes after ``import resilient``, imported on first use so
#: that ``import resilient`` does not pay for pydantic (config) or Redis (stores).
_SUBMODULES = frozenset({"config", "instrumentation", "integrations", "stores", "testing"})

if TYPE_CHECKING:  # what type checkers see; at run time, __getattr__ imports on first use
    from . import config as config
    from . import instrumentation as instrumentation
    from . import integrations as integrations
    from . import stores as stores
    from . import testing as testing


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return _import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULES})
