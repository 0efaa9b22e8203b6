"""Build named pipelines from configuration: a mapping, or a ``.toml`` / ``.json`` file.

```python
from resilient.config import load_policies

pipelines = load_policies({"payments": {}})
assert len(pipelines["payments"]) == 0     # an empty Pipeline just calls the function
```

Each top-level key names a `Pipeline`. Its value holds one section per policy; whatever the
order in the file, sections nest in the fixed order of `PIPELINE_ORDER`, outermost first,
which is the order that works for nearly every service (an overall timeout outside the retries,
the breaker inside them, the bulkhead innermost).

Everything is validated by pydantic when the configuration is loaded, never per call. A bad value
raises `pydantic.ValidationError` whose ``loc`` is the path to the field, e.g.
``("payments", "retry", "attempts")``. Unknown keys are errors too, so typos do not pass silently.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    model_validator,
)

from ._adaptive import AdaptiveBulkhead
from ._backoff import Backoff
from ._budget import RetryBudget
from ._bulkhead import Bulkhead
from ._circuit_breaker import CircuitBreaker, CountWindow, TimeWindow
from ._policy import Pipeline, Policy
from ._retry import Retry
from ._timeout import Timeout

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "PIPELINE_ORDER",
    "AdaptiveBulkheadConfig",
    "BackoffConfig",
    "BulkheadConfig",
    "CircuitBreakerConfig",
    "CountWindowConfig",
    "FallbackConfig",
    "PipelineConfig",
    "PolicyConfig",
    "RateLimiterConfig",
    "RetryBudgetConfig",
    "RetryConfig",
    "SlidingWindowConfig",
    "TimeWindowConfig",
    "TimeoutConfig",
    "TokenBucketConfig",
    "load_policies",
]


class PolicyConfig(BaseModel):
    """Base of the configuration model of one policy section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def build(self, name: str) -> Policy:
        """Build the policy; ``name`` is the pipeline's key, used as the policy's name."""
        raise NotImplementedError


def _exception_type(value: object) -> object:
    """Resolve ``"module.Name"`` (or a builtin such as ``"TimeoutError"``) to the class."""
    if not isinstance(value, str):
        return value
    module_name, _, attribute = value.rpartition(".")
    try:
        found = getattr(
            importlib.import_module(module_name) if module_name else builtins, attribute
        )
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot import the exception {value!r}: {exc}") from None
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise ValueError(f"{value!r} is not an exception class")
    return found


_ExceptionType = Annotated[type[BaseException], BeforeValidator(_exception_type)]
_Seconds = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


_BACKOFF_FIELDS = {
    "exponential": {"kind", "initial", "maximum", "multiplier", "jitter"},
    "constant": {"kind", "delay", "jitter"},
    "linear": {"kind", "initial", "step", "maximum", "jitter"},
}


class BackoffConfig(BaseModel):
    """A `Backoff`: ``{"kind": "exponential", "initial": 0.1, "maximum": 10.0, ...}``.

    ``kind`` is ``"exponential"`` (default; ``initial``, ``maximum``, ``multiplier``),
    ``"constant"`` (``delay``) or ``"linear"`` (``initial``, ``step``, ``maximum``); ``jitter`` is
    ``"full"``, ``"equal"``, ``"decorrelated"`` or ``"none"`` (default ``"full"`` for
    exponential, ``"none"`` otherwise).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["exponential", "constant", "linear"] = "exponential"
    initial: _Seconds = 0.1
    maximum: _Seconds = 10.0
    multiplier: Annotated[float, Field(ge=1.0, allow_inf_nan=False)] = 2.0
    step: _Seconds = 0.1
    delay: _Seconds = 0.1
    jitter: Literal["full", "equal", "decorrelated", "none"] | None = None

    @model_validator(mode="after")
    def _check(self) -> BackoffConfig:
        unused = sorted(self.model_fields_set - _BACKOFF_FIELDS[self.kind])
        if unused:  # a field of another kind would be silently ignored: likely a mistake
            raise ValueError(f"not used by a {self.kind} backoff: {', '.join(unused)}")
        self.build()  # cross-field rules (maximum >= initial) raise ValueError here
        return self

    def build(self) -> Backoff:
        """The `Backoff` this section describes."""
        if self.kind == "constant":
            return Backoff.constant(self.delay, jitter=self.jitter or "none")
        if self.kind == "linear":
            return Backoff.linear(
                self.initial, self.step, self.maximum, jitter=self.jitter or "none"
            )
        return Backoff.exponential(
            self.initial, self.maximum, self.multiplier, self.jitter or "full"
        )


class RetryBudgetConfig(BaseModel):
    """A `RetryBudget` for one pipeline (budgets are not shared between pipelines)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ratio: _Seconds = 0.2
    minimum_per_second: _Seconds = 10.0
    window: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 10.0


class RetryConfig(PolicyConfig):
    """The ``retry`` section: the keyword arguments of `Retry` that configuration can hold.

    ``on`` is a list of exception classes by dotted name (``"httpx.TransportError"``), or bare
    builtin names (``"TimeoutError"``), imported when the configuration is loaded; a name that
    does not import is an error at ``(..., "retry", "on", index)``. ``on_result`` and ``clock``
    are code, not configuration.
    """

    on: Annotated[tuple[_ExceptionType, ...], Field(min_length=1)] | None = None
    attempts: Annotated[int, Field(ge=1)] | None = 3
    backoff: BackoffConfig | None = None
    max_elapsed: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    retry_after: bool = True
    max_delay_hint: _Seconds = 60.0
    budget: RetryBudgetConfig | None = None

    def build(self, name: str) -> Policy:
        """A `Retry` named after the pipeline."""
        budget = self.budget
        return Retry(
            on=self.on if self.on is not None else Exception,
            attempts=self.attempts,
            backoff=self.backoff.build() if self.backoff is not None else None,
            max_elapsed=self.max_elapsed,
            retry_after=self.retry_after,
            max_delay_hint=self.max_delay_hint,
            budget=RetryBudget(budget.ratio, budget.minimum_per_second, budget.window)
            if budget is not None
            else None,
            name=name,
        )


class _StoreOptions(PolicyConfig):
    """Where a policy keeps its state: memory, or Redis at ``redis_url``."""

    redis_url: str | None = None
    on_error: Literal["allow", "deny", "raise"] = "allow"
    socket_timeout: Annotated[float, Field(gt=0)] = 0.25

    def _store(self) -> Any:
        if self.redis_url is None:
            return None
        from .stores import RedisStore

        return RedisStore.from_url(
            self.redis_url, socket_timeout=self.socket_timeout, on_error=self.on_error
        )


class CountWindowConfig(BaseModel):
    """A `CountWindow`: ``{"size": 100}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(default=100, ge=1)


class TimeWindowConfig(BaseModel):
    """A `TimeWindow`: ``{"seconds": 30, "buckets": 10}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seconds: float = Field(gt=0)
    buckets: int = Field(default=10, ge=1)


class CircuitBreakerConfig(_StoreOptions):
    """The ``circuit_breaker`` section: the keyword arguments of `CircuitBreaker`.

    ``window`` is ``{"size": N}`` for a count window or ``{"seconds": S, "buckets": B}`` for a
    time window. ``open_for`` is seconds. ``failure_on``, ``ignore`` and ``failure_result``
    take Python objects and are not configurable from files. With ``redis_url`` the breaker is
    shared through Redis (a sync client built by `resilient.stores.RedisStore.from_url` with
    ``socket_timeout`` and ``on_error``); without it, it lives in memory.
    """

    failure_rate: float | None = Field(default=0.5, gt=0, le=1)
    slow_call_rate: float | None = Field(default=None, gt=0, le=1)
    slow_call_duration: float | None = Field(default=None, gt=0)
    consecutive_failures: int | None = Field(default=None, ge=1)
    window: CountWindowConfig | TimeWindowConfig = Field(default_factory=CountWindowConfig)
    minimum_calls: int = Field(default=10, ge=1)
    open_for: float = Field(default=30.0, ge=0)
    half_open_calls: int = Field(default=1, ge=1)

    def build(self, name: str) -> CircuitBreaker:
        """Build the breaker, named after the pipeline."""
        window = self.window
        return CircuitBreaker(
            name,
            failure_rate=self.failure_rate,
            slow_call_rate=self.slow_call_rate,
            slow_call_duration=self.slow_call_duration,
            consecutive_failures=self.consecutive_failures,
            window=CountWindow(window.size)
            if isinstance(window, CountWindowConfig)
            else TimeWindow(window.seconds, window.buckets),
            minimum_calls=self.minimum_calls,
            open_for=self.open_for,
            half_open_calls=self.half_open_calls,
            store=self._store(),
        )


class BulkheadConfig(PolicyConfig):
    """The ``bulkhead`` section: the arguments of `Bulkhead`."""

    max_concurrent: int = Field(ge=1)
    max_waiting: int = Field(default=0, ge=0)
    max_wait: float | None = Field(default=None, ge=0)

    def build(self, name: str) -> Bulkhead:
        """Build the bulkhead, named after the pipeline."""
        return Bulkhead(
            self.max_concurrent, max_waiting=self.max_waiting, max_wait=self.max_wait, name=name
        )


class AdaptiveBulkheadConfig(PolicyConfig):
    """The ``adaptive_bulkhead`` section: the arguments of `AdaptiveBulkhead`."""

    initial: int = Field(default=20, ge=1)
    minimum: int = Field(default=1, ge=1)
    maximum: int = Field(default=200, ge=1)
    algorithm: Literal["aimd", "gradient"] = "aimd"
    latency_threshold: float = Field(default=5.0, gt=0)
    backoff_ratio: float = Field(default=0.9, gt=0, lt=1)
    tolerance: float = Field(default=1.5, ge=1)
    smoothing: float = Field(default=0.2, gt=0, lt=1)
    long_window: int = Field(default=600, ge=1)
    max_waiting: int = Field(default=0, ge=0)
    max_wait: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _check_bounds(self) -> AdaptiveBulkheadConfig:
        if self.maximum < self.minimum:
            raise ValueError(f"maximum must be >= minimum ({self.minimum})")
        if not self.minimum <= self.initial <= self.maximum:
            raise ValueError(f"initial must be between {self.minimum} and {self.maximum}")
        return self

    def build(self, name: str) -> AdaptiveBulkhead:
        """Build the adaptive bulkhead, named after the pipeline."""
        return AdaptiveBulkhead(
            self.initial,
            self.minimum,
            self.maximum,
            self.algorithm,
            latency_threshold=self.latency_threshold,
            backoff_ratio=self.backoff_ratio,
            tolerance=self.tolerance,
            smoothing=self.smoothing,
            long_window=self.long_window,
            max_waiting=self.max_waiting,
            max_wait=self.max_wait,
            name=name,
        )


class TimeoutConfig(PolicyConfig):
    """The ``timeout`` and ``attempt_timeout`` sections: ``2.5`` or ``{"seconds": 2.5}``."""

    seconds: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]

    @model_validator(mode="before")
    @classmethod
    def _bare_number(cls, data: Any) -> Any:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return {"seconds": data}
        return data

    def build(self, name: str) -> Policy:
        """A `Timeout` named after the pipeline."""
        return Timeout(self.seconds, name=name)


class FallbackConfig(PolicyConfig):
    """The ``fallback`` section: ``{"value": ..., "on": ["TimeoutError", ...]}``.

    ``value`` is any JSON value, returned in place of a matching failure; ``on`` lists
    exception classes by dotted name, as in `RetryConfig` (default: every `Exception`).
    A handler is code, not configuration.
    """

    value: Any
    on: Annotated[tuple[_ExceptionType, ...], Field(min_length=1)] | None = None

    def build(self, name: str) -> Policy:
        """A `Fallback` named after the pipeline."""
        from ._fallback import Fallback

        return Fallback(self.value, on=self.on if self.on is not None else Exception, name=name)


class _Section(Protocol):
    def build(self, name: str) -> Policy: ...


#: Section names in nesting order, outermost first. A section joins `PipelineConfig` as a field
#: when its policy is wired in; names listed here without a field are skipped.
PIPELINE_ORDER: tuple[str, ...] = (
    "fallback",  # degrade instead of failing: sees every error, rejections included
    "timeout",  # one deadline for the whole call, every retry and wait included
    "retry",
    "circuit_breaker",  # inside retry, so each attempt is counted and can be refused
    "attempt_timeout",  # a deadline per attempt
    "rate_limiter",
    "bulkhead",
    "adaptive_bulkhead",  # innermost: a slot is held only while the call really runs
)


class _RateLimiterBase(_StoreOptions):
    max_wait: Annotated[float, Field(ge=0)] | None = 0.0


class TokenBucketConfig(_RateLimiterBase):
    """``rate_limiter = {kind = "token_bucket", rate = ..., capacity = ...}``.

    Without ``redis_url`` the limiter keeps its state in memory; with it, in Redis, through a
    sync client built by `resilient.stores.RedisStore.from_url` (``socket_timeout``,
    ``on_error``). The pipeline's name is the limiter's name.
    """

    kind: Literal["token_bucket"]
    rate: Annotated[float, Field(gt=0, le=1_000_000)]
    capacity: Annotated[int, Field(ge=1)]

    def build(self, name: str) -> Policy:
        """Build the `resilient.TokenBucket`."""
        from ._rate_limit import TokenBucket

        return TokenBucket(
            self.rate, self.capacity, store=self._store(), name=name, max_wait=self.max_wait
        )


class SlidingWindowConfig(_RateLimiterBase):
    """``rate_limiter = {kind = "sliding_window", limit = ..., window = ..., precise = false}``.

    Stores as for `TokenBucketConfig`.
    """

    kind: Literal["sliding_window"]
    limit: Annotated[int, Field(ge=1)]
    window: Annotated[float, Field(gt=0)]
    precise: bool = False

    def build(self, name: str) -> Policy:
        """Build the `resilient.SlidingWindow`."""
        from ._rate_limit import SlidingWindow

        return SlidingWindow(
            self.limit,
            self.window,
            precise=self.precise,
            store=self._store(),
            name=name,
            max_wait=self.max_wait,
        )


#: The ``rate_limiter`` section: a token bucket or a sliding window, told apart by ``kind``.
RateLimiterConfig = Annotated[TokenBucketConfig | SlidingWindowConfig, Field(discriminator="kind")]


class PipelineConfig(BaseModel):
    """The sections of one named pipeline; each is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fallback: FallbackConfig | None = None
    timeout: TimeoutConfig | None = None
    retry: RetryConfig | None = None
    attempt_timeout: TimeoutConfig | None = None
    circuit_breaker: CircuitBreakerConfig | None = None
    bulkhead: BulkheadConfig | None = None
    adaptive_bulkhead: AdaptiveBulkheadConfig | None = None
    rate_limiter: RateLimiterConfig | None = None

    def build(self, name: str) -> Pipeline:
        """Build the pipeline, sections nested in `PIPELINE_ORDER`."""
        policies: list[Policy] = []
        for section_name in PIPELINE_ORDER:
            section: _Section | None = getattr(self, section_name, None)
            if section is not None:
                policies.append(section.build(name))
        return Pipeline(*policies, name=name)


class _PoliciesConfig(RootModel[dict[str, PipelineConfig]]):
    pass


def _read(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        with path.open("rb") as file:
            return tomllib.load(file)
    if suffix == ".json":
        with path.open(encoding="utf-8") as file:
            return json.load(file)
    raise ValueError(f"source must be a .toml or .json file, got {str(path)!r}")


def load_policies(source: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Pipeline]:
    """Validate a configuration and build one `Pipeline` per top-level key.

    Args:
        source: a mapping, or the path of a ``.toml`` or ``.json`` file holding one.

    Returns:
        The pipelines by name, in the order they appear in ``source``.

    Raises:
        pydantic.ValidationError: a value is invalid; ``loc`` is the path to the field.
        ValueError: ``source`` is a path with an unsupported suffix.
        TypeError: ``source`` is neither a mapping nor a path.
    """
    if isinstance(source, (str, os.PathLike)):
        data = _read(Path(source))
    elif isinstance(source, Mapping):
        data = source
    else:
        raise TypeError(f"source must be a mapping or a path, got {type(source).__name__}")
    config = _PoliciesConfig.model_validate(data)
    return {name: pipeline.build(name) for name, pipeline in config.root.items()}
