"""Fuzzing the configuration loader: any mapping, TOML or JSON gives pipelines or a clear error.

DESIGN §5: invalid configuration raises a pydantic ``ValidationError`` naming the field path
(constructor errors included); a file that does not parse is a ``ValueError`` naming the file.
Nothing else may escape: no ``TypeError``, ``KeyError``, ``OverflowError`` or
``AttributeError`` from deep inside, whatever the values, the nesting or the ``${VAR}``
references.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from resilient import Pipeline
from resilient.config import load_policies

from ._models_support import bounded, record

FIELDS = {
    "timeout": ["seconds"],
    "attempt_timeout": ["seconds"],
    "retry": [
        "on",
        "attempts",
        "backoff",
        "max_elapsed",
        "retry_after",
        "max_delay_hint",
        "budget",
    ],
    "circuit_breaker": [
        "failure_rate",
        "slow_call_rate",
        "slow_call_duration",
        "consecutive_failures",
        "window",
        "minimum_calls",
        "open_for",
        "half_open_calls",
        "on_error",
        "redis_url",
        "store",
    ],
    "bulkhead": ["max_concurrent", "max_waiting", "max_wait"],
    "adaptive_bulkhead": ["initial", "minimum", "maximum", "algorithm", "latency_threshold"],
    "rate_limiter": ["kind", "rate", "capacity", "limit", "window", "precise", "max_wait"],
    "idempotency": ["key", "ttl", "lock_timeout", "wait", "namespace"],
    "fallback": ["value", "on"],
}
NESTED = {
    "backoff": ["kind", "initial", "maximum", "multiplier", "step", "delay", "jitter"],
    "budget": ["ratio", "minimum_per_second", "window"],
    "window": ["kind", "size", "seconds", "buckets"],
}

# Names that are looked up as modules or attributes: never arbitrary text (importing an
# arbitrary module runs its code), but every malformed shape.
names = st.sampled_from(
    [
        "ValueError",
        "builtins.TimeoutError",
        "resilient.CircuitOpenError",
        "resilient.testing:FakeClock",
        "os.path:join",
        "resilient_no_such_module.Error",
        "resilient_no_such_module:key",
        ".Error",
        "..Error",
        ".x.Error",
        ".:key",
        "::",
        ":",
        "",
        ".",
        "resilient.",
        "resilient:",
        "a\x00b",
        "json:nope",
        "resilient.config:load_policies",
    ]
)

scalars = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(-3, 300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.sampled_from(
        [
            "250ms",
            "2s",
            "1m30s",
            "1h",
            "-1s",
            "1e400",
            "nan",
            "inf",
            "1.5.2s",
            "100/minute",
            "10 per second",
            "0/second",
            "5/0 minutes",
            "token_bucket",
            "sliding_window",
            "count",
            "time",
            "exponential",
            "constant",
            "linear",
            "full",
            "none",
            "aimd",
            "gradient",
            "allow",
            "deny",
            "raise",
            "redis://127.0.0.1:1/0",
            "not a url",
            "main",
            "${RELIABILITY_FUZZ_SET}",
            "${RELIABILITY_FUZZ_UNSET}",
            "${RELIABILITY_FUZZ_UNSET:-3s}",
            "${RELIABILITY_FUZZ_EMPTY:-}",
            "$${LITERAL}",
            "${",
            "${1BAD}",
            "${A:-${B}}",
        ]
    ),
    st.text(max_size=12),
    names,
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(sorted({f for fs in NESTED.values() for f in fs}))
            | st.text(max_size=4),
            inner,
            max_size=3,
        )
    ),
    max_leaves=6,
)


@st.composite
def sections(draw: st.DrawFn) -> dict[str, Any]:
    pipeline: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=4, unique=True)):
        if draw(st.booleans()) and section in ("timeout", "attempt_timeout"):
            pipeline[section] = draw(scalars)
            continue
        body: dict[str, Any] = {}
        for field in draw(st.lists(st.sampled_from(FIELDS[section]), max_size=5, unique=True)):
            if field in NESTED and draw(st.booleans()):
                body[field] = {
                    nested: draw(scalars)
                    for nested in draw(st.lists(st.sampled_from(NESTED[field]), max_size=4))
                }
            else:
                body[field] = draw(names if field in ("on", "key") else values)
        if draw(st.integers(0, 9)) == 0:
            body[draw(st.text(max_size=5))] = draw(scalars)
        pipeline[section] = body
    if draw(st.integers(0, 9)) == 0:
        pipeline[draw(st.text(max_size=6))] = draw(values)
    return pipeline


configs = st.dictionaries(st.text(max_size=8), sections() | values, max_size=3)


def load(source: Any) -> str:
    """``load_policies(source)``: "ok", "invalid" (ValidationError) or "unreadable" (ValueError)."""
    saved = {k: os.environ.get(k) for k in ("RELIABILITY_FUZZ_SET", "RELIABILITY_FUZZ_EMPTY")}
    os.environ["RELIABILITY_FUZZ_SET"] = "2s"
    os.environ["RELIABILITY_FUZZ_EMPTY"] = ""
    try:
        pipelines = load_policies(source)
    except ValidationError as exc:
        for error in exc.errors():
            assert isinstance(error["loc"], tuple)
        return "invalid"
    except ValueError as exc:
        if not isinstance(source, Path):
            raise
        message = str(exc)
    else:
        assert all(isinstance(p, Pipeline) for p in pipelines.values())
        return "ok"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert str(source) in message  # the unreadable file is named
    return "unreadable"


@given(config=configs)
@bounded(100)
def test_fuzz_load_policies_from_mappings(config: dict[str, Any]) -> None:
    outcome = load(config)
    record("test_fuzz_load_policies_from_mappings", "config loader (mappings)", inputs=1)
    record("test_fuzz_load_policies_from_mappings", "config loader (mappings)", **{outcome: 1})


def _toml_value(value: Any) -> str | None:
    """``value`` written as TOML, or None when TOML cannot say it (None, huge integers)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if -(2**63) <= value < 2**63 else None
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        items = [_toml_value(item) for item in value]
        return None if None in items else "[" + ", ".join(items) + "]"  # type: ignore[arg-type]
    if isinstance(value, dict):
        pairs = [(json.dumps(k), _toml_value(v)) for k, v in value.items()]
        if any(v is None for _, v in pairs):
            return None
        return "{" + ", ".join(f"{k} = {v}" for k, v in pairs) + "}"
    return None


@given(
    config=configs,
    garbage=st.text(max_size=30).filter(bool) | st.just(""),
    kind=st.sampled_from(["toml", "json"]),
)
@bounded(120)
def test_fuzz_load_policies_from_files(config: dict[str, Any], garbage: str, kind: str) -> None:
    if kind == "json":
        text = garbage if garbage else json.dumps(config)
    else:
        lines = []
        for name, pipeline in config.items():
            written = _toml_value(pipeline) if isinstance(pipeline, dict) else None
            if written is not None:
                lines.append(f"{json.dumps(name)} = {written}")
        text = garbage if garbage else "\n".join(lines)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"policies.{kind}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        outcome = load(path)
    record("test_fuzz_load_policies_from_files", "config loader (TOML, JSON)", inputs=1)
    record("test_fuzz_load_policies_from_files", "config loader (TOML, JSON)", **{outcome: 1})


# -- regressions found by the fuzzing above ----------------------------------------------------


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("retry", "on", [".errors.Boom"]),
        ("retry", "on", ["..Boom"]),
        ("fallback", "on", [".Boom"]),
        ("idempotency", "key", ".keys:order_id"),
        ("idempotency", "key", ".:f"),
    ],
)
def test_a_relative_module_name_is_a_validation_error(
    section: str, field: str, value: object
) -> None:
    """A relative name (".errors.Boom") used to escape as a bare TypeError from importlib."""
    with pytest.raises(ValidationError) as info:
        load_policies({"payments": {section: {field: value}}})
    locations = [error["loc"][:3] for error in info.value.errors()]
    assert ("payments", section, field) in locations
