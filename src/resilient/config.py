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
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, RootModel

from ._policy import Pipeline, Policy

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["PIPELINE_ORDER", "PipelineConfig", "PolicyConfig", "load_policies"]


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


class PipelineConfig(BaseModel):
    """The sections of one named pipeline; each is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
