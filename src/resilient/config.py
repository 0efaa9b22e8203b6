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

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, RootModel

from ._policy import Pipeline, Policy

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "PIPELINE_ORDER",
    "PipelineConfig",
    "PolicyConfig",
    "RateLimiterConfig",
    "SlidingWindowConfig",
    "TokenBucketConfig",
    "load_policies",
]


class PolicyConfig(BaseModel):
    """Base of the configuration model of one policy section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def build(self, name: str) -> Policy:
        """Build the policy; ``name`` is the pipeline's key, used as the policy's name."""
        raise NotImplementedError


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


class _RateLimiterBase(PolicyConfig):
    max_wait: Annotated[float, Field(ge=0)] | None = 0.0
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
