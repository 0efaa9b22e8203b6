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

Durations are numbers of seconds or strings with units (``"250ms"``, ``"2s"``, ``"1m30s"``);
rates are numbers per second or strings such as ``"100/minute"``; ``${VAR}`` and
``${VAR:-default}`` in string values are read from the environment; ``store = "main"`` names a
store passed as ``load_policies(source, stores={"main": ...})``.

Everything is validated by pydantic when the configuration is loaded, never per call. A bad value
raises `pydantic.ValidationError` whose ``loc`` is the path to the field, e.g.
``("payments", "retry", "attempts")``, including values that only a policy's constructor
rejects. Unknown keys are errors too, so typos do not pass silently.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    RootModel,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from ._adaptive import AdaptiveBulkhead
from ._backoff import Backoff
from ._budget import RetryBudget
from ._bulkhead import Bulkhead
from ._circuit_breaker import CircuitBreaker, CountWindow, TimeWindow
from ._policy import Pipeline, Policy
from ._rate_limit import SlidingWindow, TokenBucket, _parse_rate
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
    "IdempotencyConfig",
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
    "parse_duration",
]


class PolicyConfig(BaseModel):
    """Base of the configuration model of one policy section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def build(self, name: str) -> Policy:
        """Build the policy; ``name`` is the pipeline's key, used as the policy's name."""
        raise NotImplementedError


# -- value types -----------------------------------------------------------------------------

_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(us|µs|ms|s|m|h|d)", re.ASCII)
_DURATION = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)\s*(?:us|µs|ms|s|m|h|d)\s*)+")


def parse_duration(value: object) -> float:
    """Seconds from a number, or from a string with units: ``"250ms"``, ``"2s"``, ``"1m30s"``.

    Units are ``us`` (or ``µs``), ``ms``, ``s``, ``m``, ``h`` and ``d``; parts add up, as in
    Go's ``time.ParseDuration``. A string holding only a number (``"2.5"``, as an environment
    variable gives it) is seconds.

    Raises:
        ValueError: ``value`` is neither a number nor a duration string.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        if _DURATION.fullmatch(text):
            return sum(
                float(number) * _UNITS[unit] for number, unit in _DURATION_PART.findall(text)
            )
    raise ValueError(
        "expected a duration: a number of seconds or a string with a unit such as "
        f"'250ms', '2s', '1m' or '1h30m' (units us, ms, s, m, h, d), got {value!r}"
    )


def _duration(value: object) -> object:
    return value if value is None else parse_duration(value)


#: Seconds >= 0, given as a number or a duration string.
_Seconds = Annotated[float, BeforeValidator(_duration), Field(ge=0.0, allow_inf_nan=False)]
#: Seconds > 0, given as a number or a duration string.
_PositiveSeconds = Annotated[float, BeforeValidator(_duration), Field(gt=0.0, allow_inf_nan=False)]
_NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


def _exception_type(value: object) -> object:
    """Resolve ``"module.Name"`` (or a builtin such as ``"TimeoutError"``) to the class."""
    if not isinstance(value, str):
        return value
    module_name, _, attribute = value.rpartition(".")
    try:
        found = getattr(
            importlib.import_module(module_name) if module_name else builtins, attribute
        )
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        # TypeError: a relative module name (".errors") has no package to be relative to.
        raise ValueError(f"cannot import the exception {value!r}: {exc}") from None
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise ValueError(f"{value!r} is not an exception class")
    return found


def _not_empty(value: tuple[type[BaseException], ...]) -> tuple[type[BaseException], ...]:
    # Checked after the items (a min_length constraint would add a second error when an item
    # fails to import: the list would count as empty after validation).
    if not value:
        raise ValueError("give at least one exception class, or leave `on` out to retry any")
    return value


_ExceptionType = Annotated[type[BaseException], BeforeValidator(_exception_type)]


def _rate(value: object) -> object:
    """A rate: a number per second, a numeric string, or ``"100/minute"`` (kept as text)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        _parse_rate(value, "rate")  # a ValueError that says what a rate looks like
        return value.strip()
    return value


def _rate_range(value: float | str) -> float | str:
    if isinstance(value, float) and not 0 < value <= 1_000_000:
        raise ValueError(f"a rate is > 0 and <= 1000000 per second, got {value!r}")
    return value


# -- environment variables -------------------------------------------------------------------

_VARIABLE = re.compile(
    r"\$(\$?)\{(?:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|)",
)


def _expand_string(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        escaped, variable, default = match.groups()
        if escaped:  # "$${...}" is a literal "${...}"
            return match.group(0)[1:]
        if variable is None:
            raise ValueError(f"malformed ${{...}} in {text!r}: write ${{VAR}} or ${{VAR:-default}}")
        value = os.environ.get(variable)
        if not value and default is not None:
            return default
        if value is None:
            raise ValueError(
                f"the environment variable {variable} is not set "
                f"(write ${{{variable}:-default}} to give a default)"
            )
        return value

    return _VARIABLE.sub(replace, text) if "$" in text else text


def _expand(value: Any, loc: tuple[str | int, ...], errors: list[InitErrorDetails]) -> Any:
    """``value`` with ``${VAR}`` / ``${VAR:-default}`` expanded in every string inside it."""
    if isinstance(value, str):
        try:
            return _expand_string(value)
        except ValueError as exc:
            errors.append(_error(loc, value, exc))
            return value
    if isinstance(value, Mapping):
        return {key: _expand(item, (*loc, key), errors) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_expand(item, (*loc, index), errors) for index, item in enumerate(value)]
    return value


def _error(loc: tuple[str | int, ...], value: object, exc: Exception) -> InitErrorDetails:
    return {"type": "value_error", "loc": loc, "input": value, "ctx": {"error": exc}}


# -- stores named in load_policies(stores=...) -------------------------------------------------


class _StoreOptions(PolicyConfig):
    """Where a policy keeps its state: memory, Redis at ``redis_url``, or a named store."""

    redis_url: str | None = None
    store: str | None = None
    on_error: Literal["allow", "deny", "raise"] = "allow"
    socket_timeout: _PositiveSeconds = 0.25

    _given_store: Any = PrivateAttr(default=None)

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        stores = (info.context or {}).get("stores") or {}
        if value not in stores:
            known = ", ".join(repr(name) for name in stores) or "none were given"
            raise ValueError(
                f"no store named {value!r}: pass it as load_policies(..., stores={{{value!r}: "
                f"...}}) (stores: {known})"
            )
        return value

    @model_validator(mode="after")
    def _resolve_store(self, info: ValidationInfo) -> _StoreOptions:
        if self.store is not None:
            if "redis_url" in self.model_fields_set:
                raise ValueError("give either store or redis_url, not both")
            self._given_store = (info.context or {})["stores"][self.store]
        return self

    def _store(self) -> Any:
        if self._given_store is not None:
            return self._given_store
        if self.redis_url is None:
            return None
        from .stores import RedisStore

        return RedisStore.from_url(
            self.redis_url, socket_timeout=self.socket_timeout, on_error=self.on_error
        )


# -- sections --------------------------------------------------------------------------------


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
    exponential, ``"none"`` otherwise). Times are durations (``0.1`` or ``"100ms"``).
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

    ratio: _NonNegative = 0.2
    minimum_per_second: _NonNegative = 10.0
    window: _PositiveSeconds = 10.0


class RetryConfig(PolicyConfig):
    """The ``retry`` section: the keyword arguments of `Retry` that configuration can hold.

    ``on`` is a list of exception classes by dotted name (``"httpx.TransportError"``), or bare
    builtin names (``"TimeoutError"``), imported when the configuration is loaded; a name that
    does not import is an error at ``(..., "retry", "on", index)``. ``on_result`` and ``clock``
    are code, not configuration. ``max_elapsed`` and ``max_delay_hint`` are durations.
    """

    on: Annotated[tuple[_ExceptionType, ...], AfterValidator(_not_empty)] | None = None
    attempts: Annotated[int, Field(ge=1)] | None = 3
    backoff: BackoffConfig | None = None
    max_elapsed: _PositiveSeconds | None = None
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


class CountWindowConfig(BaseModel):
    """A `CountWindow`: ``{"size": 100}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(default=100, ge=1)


class TimeWindowConfig(BaseModel):
    """A `TimeWindow`: ``{"seconds": 30, "buckets": 10}`` (``seconds`` may be ``"30s"``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seconds: _PositiveSeconds
    buckets: int = Field(default=10, ge=1)


def _window(value: object) -> object:
    # Told apart by their keys, so that a bad value gets one error under ``window`` rather
    # than one per kind of window.
    if isinstance(value, Mapping):
        kind = TimeWindowConfig if "seconds" in value or "buckets" in value else CountWindowConfig
        return kind.model_validate(value)
    if isinstance(value, (CountWindowConfig, TimeWindowConfig)):
        return value
    raise ValueError(
        "a window is {size = N} (the last N calls) or {seconds = S, buckets = B} (the last S "
        f"seconds), got {value!r}"
    )


class CircuitBreakerConfig(_StoreOptions):
    """The ``circuit_breaker`` section: the keyword arguments of `CircuitBreaker`.

    ``window`` is ``{"size": N}`` for a count window or ``{"seconds": S, "buckets": B}`` for a
    time window. ``open_for`` and ``slow_call_duration`` are durations. ``failure_on``,
    ``ignore`` and ``failure_result`` take Python objects and are not configurable from files.
    With ``store = "name"`` the breaker uses that store from ``load_policies(stores=...)``; with
    ``redis_url`` it is shared through Redis (a sync client built by
    `resilient.stores.RedisStore.from_url` with ``socket_timeout`` and ``on_error``); without
    either, it lives in memory.
    """

    failure_rate: float | None = Field(default=0.5, gt=0, le=1)
    slow_call_rate: float | None = Field(default=None, gt=0, le=1)
    slow_call_duration: _PositiveSeconds | None = None
    consecutive_failures: int | None = Field(default=None, ge=1)
    window: Annotated[CountWindowConfig | TimeWindowConfig, BeforeValidator(_window)] = Field(
        default_factory=CountWindowConfig
    )
    minimum_calls: int = Field(default=10, ge=1)
    open_for: _Seconds = 30.0
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
    """The ``bulkhead`` section: the arguments of `Bulkhead` (``max_wait`` a duration)."""

    max_concurrent: int = Field(ge=1)
    max_waiting: int = Field(default=0, ge=0)
    max_wait: _Seconds | None = None

    def build(self, name: str) -> Bulkhead:
        """Build the bulkhead, named after the pipeline."""
        return Bulkhead(
            self.max_concurrent, max_waiting=self.max_waiting, max_wait=self.max_wait, name=name
        )


class AdaptiveBulkheadConfig(PolicyConfig):
    """The ``adaptive_bulkhead`` section: the arguments of `AdaptiveBulkhead`.

    ``latency_threshold`` and ``max_wait`` are durations.
    """

    initial: int = Field(default=20, ge=1)
    minimum: int = Field(default=1, ge=1)
    maximum: int = Field(default=200, ge=1)
    algorithm: Literal["aimd", "gradient"] = "aimd"
    latency_threshold: _PositiveSeconds = 5.0
    backoff_ratio: float = Field(default=0.9, gt=0, lt=1)
    tolerance: float = Field(default=1.5, ge=1)
    smoothing: float = Field(default=0.2, gt=0, lt=1)
    long_window: int = Field(default=600, ge=1)
    max_waiting: int = Field(default=0, ge=0)
    max_wait: _Seconds | None = None

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
    """The ``timeout`` and ``attempt_timeout`` sections: ``2.5``, ``"2.5s"``, ``{seconds = 2}``."""

    seconds: _PositiveSeconds

    @model_validator(mode="before")
    @classmethod
    def _bare_number(cls, data: Any) -> Any:
        if isinstance(data, (int, float, str)) and not isinstance(data, bool):
            return {"seconds": data}
        if not isinstance(data, (Mapping, TimeoutConfig)):
            raise ValueError(
                "a timeout is a number of seconds, a duration string such as '2s', or "
                f"{{seconds = ...}}, got {data!r}"
            )
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
    "idempotency",  # once per key: whatever runs inside (retries included) is the one call
    "timeout",  # one deadline for the whole call, every retry and wait included
    "retry",
    "circuit_breaker",  # inside retry, so each attempt is counted and can be refused
    "attempt_timeout",  # a deadline per attempt
    "rate_limiter",
    "bulkhead",
    "adaptive_bulkhead",  # innermost: a slot is held only while the call really runs
)


class _RateLimiterBase(_StoreOptions):
    max_wait: _Seconds | None = 0.0


class TokenBucketConfig(_RateLimiterBase):
    """``rate_limiter = {kind = "token_bucket", rate = ..., capacity = ...}``.

    ``rate`` is units per second (``10``) or a rate string (``"100/minute"``, as
    `resilient.TokenBucket.parse` reads it). With a rate string, ``capacity`` defaults to its
    count; with a number, ``capacity`` is required.

    With ``store = "name"`` the limiter uses that store from ``load_policies(stores=...)``; with
    ``redis_url``, Redis through a sync client built by `resilient.stores.RedisStore.from_url`
    (``socket_timeout``, ``on_error``); otherwise memory. The pipeline's name is the limiter's
    name.
    """

    kind: Literal["token_bucket"]
    rate: Annotated[float | str, BeforeValidator(_rate), AfterValidator(_rate_range)]
    capacity: Annotated[int, Field(ge=1)] | None = Field(default=None, validate_default=True)

    @field_validator("capacity")
    @classmethod
    def _capacity_needed(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None and not isinstance(info.data.get("rate", ""), str):
            raise ValueError("capacity is required when rate is a number (units per second)")
        return value

    def build(self, name: str) -> Policy:
        """Build the `resilient.TokenBucket`."""
        rate, capacity = self.rate, self.capacity
        if isinstance(rate, str):
            count, period = _parse_rate(rate, "TokenBucket")
            rate = count / period
            capacity = count if capacity is None else capacity
        assert capacity is not None  # checked by _capacity_needed
        return TokenBucket(rate, capacity, store=self._store(), name=name, max_wait=self.max_wait)


class SlidingWindowConfig(_RateLimiterBase):
    """``rate_limiter = {kind = "sliding_window", limit = ..., window = ..., precise = false}``.

    ``window`` is a duration (``60`` or ``"1m"``). Instead of ``limit`` and ``window``, give
    ``rate = "100/minute"`` (the count is the limit, the period the window, as
    `resilient.SlidingWindow.parse` reads it). Stores as for `TokenBucketConfig`.
    """

    kind: Literal["sliding_window"]
    limit: Annotated[int, Field(ge=1)] | None = None
    window: _PositiveSeconds | None = None
    rate: str | None = None
    precise: bool = False

    @field_validator("rate")
    @classmethod
    def _rate_alone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        _parse_rate(value, "rate")
        if info.data.get("limit") is not None or info.data.get("window") is not None:
            raise ValueError("give either rate or limit and window, not both")
        return value.strip()

    @model_validator(mode="after")
    def _limit_and_window(self) -> SlidingWindowConfig:
        if self.rate is None and (self.limit is None or self.window is None):
            raise ValueError("give limit and window, or rate (e.g. '100/minute')")
        return self

    def build(self, name: str) -> Policy:
        """Build the `resilient.SlidingWindow`."""
        if self.rate is not None:
            limit, period = _parse_rate(self.rate, "SlidingWindow")
            window = float(period)
        else:
            assert self.limit is not None  # _limit_and_window
            assert self.window is not None
            limit, window = self.limit, self.window
        return SlidingWindow(
            limit,
            window,
            precise=self.precise,
            store=self._store(),
            name=name,
            max_wait=self.max_wait,
        )


def _key_function(value: object) -> object:
    """Resolve ``"module:function"`` (or ``"module.function"``) to the callable it names."""
    if not isinstance(value, str):
        return value
    module_name, sep, attribute = value.partition(":")
    if not sep:
        module_name, _, attribute = value.rpartition(".")
    try:
        found = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        # TypeError: a relative module name (".keys") has no package to be relative to.
        raise ValueError(f"cannot import the key function {value!r}: {exc}") from None
    if not callable(found):
        raise ValueError(f"{value!r} is not callable")
    return found


class IdempotencyConfig(_StoreOptions):
    """``idempotency = {key = "myapp.keys:order_id", ttl = 86400, lock_timeout = 90}``.

    ``key`` names the function that maps a call's arguments to its idempotency key
    (``"module:function"``). Without ``redis_url`` the records are kept in a `MemoryStore` of
    the pipeline's own (one process); with it, in Redis. Idempotency always fails closed, so
    ``on_error`` does not apply. See `resilient.idempotent`.
    """

    key: Annotated[Callable[..., str], BeforeValidator(_key_function)]
    ttl: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 86_400
    lock_timeout: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 90
    wait: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    namespace: Annotated[str, Field(min_length=1)] | None = None

    def build(self, name: str) -> Policy:
        """Build the `resilient.idempotent` policy."""
        from ._idempotency import Idempotent
        from .stores import MemoryStore

        return Idempotent(
            store=self._store() or MemoryStore(),
            key=self.key,
            ttl=self.ttl,
            lock_timeout=self.lock_timeout,
            wait=self.wait,
            namespace=self.namespace,
        )


#: The ``rate_limiter`` section: a token bucket or a sliding window, told apart by ``kind``.
RateLimiterConfig = Annotated[TokenBucketConfig | SlidingWindowConfig, Field(discriminator="kind")]

_FIRST_WORD = re.compile(r"\w+")


def _constructor_error(section_name: str, section: BaseModel, exc: Exception) -> InitErrorDetails:
    """A constructor's ValueError / TypeError, placed at the section (and field) it came from."""
    loc: tuple[str, ...] = (section_name,)
    kind = getattr(section, "kind", None)
    if isinstance(kind, str):  # a tagged union: pydantic puts the tag in the path too
        loc += (kind,)
    value: object = section.model_dump()
    first = _FIRST_WORD.match(str(exc))
    word = first.group() if first is not None else ""
    if word in type(section).model_fields:  # "open_for must be ...": the field it names
        return _error((*loc, word), getattr(section, word), exc)
    for field in type(section).model_fields:  # "seconds must be ...": a nested section's field
        nested = getattr(section, field)
        if isinstance(nested, BaseModel) and word in type(nested).model_fields:
            return _error((*loc, field, word), getattr(nested, word), exc)
    return _error(loc, value, exc)


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
    idempotency: IdempotencyConfig | None = None

    def build(self, name: str) -> Pipeline:
        """Build the pipeline, sections nested in `PIPELINE_ORDER`.

        Raises:
            pydantic.ValidationError: a policy's constructor rejected a value the model let
                through; ``loc`` starts at the section (e.g. ``("circuit_breaker", "open_for")``).
        """
        policies: list[Policy] = []
        errors: list[InitErrorDetails] = []
        for section_name in PIPELINE_ORDER:
            section: _Section | None = getattr(self, section_name, None)
            if section is None:
                continue
            try:
                policies.append(section.build(name))
            except ValidationError as exc:
                errors += _prefixed(exc, (section_name,))
            except (ValueError, TypeError) as exc:
                assert isinstance(section, BaseModel)
                errors.append(_constructor_error(section_name, section, exc))
        if errors:
            raise ValidationError.from_exception_data(name, errors)
        return Pipeline(*policies, name=name)


class _PoliciesConfig(RootModel[dict[str, PipelineConfig]]):
    pass


def _prefixed(exc: ValidationError, prefix: tuple[str | int, ...]) -> list[InitErrorDetails]:
    return [
        {
            "type": error["type"],
            "loc": (*prefix, *error["loc"]),
            "input": error["input"],
            **({"ctx": error["ctx"]} if "ctx" in error else {}),  # type: ignore[typeddict-item]
        }
        for error in exc.errors()
    ]


def _read(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        with path.open("rb") as file:
            try:
                return tomllib.load(file)
            except tomllib.TOMLDecodeError as exc:
                raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    if suffix == ".json":
        with path.open(encoding="utf-8") as file:
            try:
                return json.load(file)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not valid JSON: {exc}") from exc
    raise ValueError(f"source must be a .toml or .json file, got {str(path)!r}")


def load_policies(
    source: Mapping[str, Any] | str | os.PathLike[str],
    *,
    stores: Mapping[str, Any] | None = None,
) -> dict[str, Pipeline]:
    """Validate a configuration and build one `Pipeline` per top-level key.

    Args:
        source: a mapping, or the path of a ``.toml`` or ``.json`` file holding one.
        stores: stores that sections may name (``store = "main"``), e.g.
            ``{"main": RedisStore(client)}``: limiters and breakers then share that store
            (and its client) instead of building one from ``redis_url``.

    Returns:
        The pipelines by name, in the order they appear in ``source``.

    Raises:
        pydantic.ValidationError: a value is invalid; ``loc`` is the path to the field, and the
            error's title the file's path (``"policy configuration"`` for a mapping).
        ValueError: ``source`` is a path with an unsupported suffix, or a file that does not
            parse (the message names the file).
        TypeError: ``source`` is neither a mapping nor a path, or ``stores`` not a mapping.
    """
    if isinstance(source, (str, os.PathLike)):
        title = os.fspath(source)
        data = _read(Path(source))
    elif isinstance(source, Mapping):
        title = "policy configuration"
        data = source
    else:
        raise TypeError(f"source must be a mapping or a path, got {type(source).__name__}")
    if stores is None:
        stores = {}
    elif not isinstance(stores, Mapping):
        raise TypeError(f"stores must be a mapping of names to stores, got {stores!r}")
    errors: list[InitErrorDetails] = []
    data = _expand(data, (), errors)
    if errors:
        raise ValidationError.from_exception_data(title, errors)
    try:
        config = _PoliciesConfig.model_validate(data, context={"stores": stores})
    except ValidationError as exc:
        raise ValidationError.from_exception_data(title, _prefixed(exc, ())) from None
    pipelines: dict[str, Pipeline] = {}
    for name, section in config.root.items():
        try:
            pipelines[name] = section.build(name)
        except ValidationError as exc:
            errors += _prefixed(exc, (name,))
    if errors:
        raise ValidationError.from_exception_data(title, errors)
    return pipelines
