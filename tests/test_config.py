from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest

from resilient import Pipeline
from resilient.config import PIPELINE_ORDER, load_policies


def test_each_key_builds_a_named_pipeline() -> None:
    pipelines = load_policies({"payments": {}, "search": {}})
    assert list(pipelines) == ["payments", "search"]
    assert isinstance(pipelines["payments"], Pipeline)
    assert pipelines["payments"].name == "payments"


def test_unknown_section_is_an_error_naming_the_path() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        load_policies({"payments": {"retyr": {"attempts": 3}}})
    assert info.value.errors()[0]["loc"] == ("payments", "retyr")


def test_a_pipeline_must_be_a_mapping() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        load_policies({"payments": 3})
    assert info.value.errors()[0]["loc"][0] == "payments"


def test_loads_toml_and_json_files(tmp_path: Path) -> None:
    toml = tmp_path / "policies.toml"
    toml.write_text("[payments]\n[search]\n")
    assert list(load_policies(toml)) == ["payments", "search"]
    data = tmp_path / "policies.json"
    data.write_text(json.dumps({"payments": {}}))
    assert list(load_policies(str(data))) == ["payments"]


def test_unsupported_file_suffix_is_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text("payments: {}\n")
    with pytest.raises(ValueError, match="source"):
        load_policies(path)


def test_source_of_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="source"):
        load_policies(42)  # type: ignore[arg-type]


def test_pipeline_order_puts_fallback_outermost_and_bulkheads_innermost() -> None:
    assert PIPELINE_ORDER[0] == "fallback"
    assert PIPELINE_ORDER.index("timeout") < PIPELINE_ORDER.index("retry")
    assert PIPELINE_ORDER.index("retry") < PIPELINE_ORDER.index("circuit_breaker")
    assert PIPELINE_ORDER[-1] == "adaptive_bulkhead"


def test_circuit_breaker_and_bulkhead_sections_build_their_policies() -> None:
    from resilient import AdaptiveBulkhead, Bulkhead, CircuitBreaker, TimeWindow

    pipeline = load_policies(
        {
            "payments": {
                "adaptive_bulkhead": {"initial": 5, "algorithm": "gradient"},
                "bulkhead": {"max_concurrent": 4, "max_waiting": 2, "max_wait": 0.5},
                "circuit_breaker": {
                    "failure_rate": 0.25,
                    "window": {"seconds": 30},
                    "minimum_calls": 20,
                    "half_open_calls": 3,
                },
            }
        }
    )["payments"]
    breaker, bulkhead, adaptive = pipeline.policies
    assert isinstance(breaker, CircuitBreaker)
    assert breaker.name == "payments"
    assert isinstance(breaker._backend._window, TimeWindow)  # type: ignore[attr-defined]
    assert isinstance(bulkhead, Bulkhead)
    assert (bulkhead.max_concurrent, bulkhead.max_waiting, bulkhead.name) == (4, 2, "payments")
    assert isinstance(adaptive, AdaptiveBulkhead)
    assert adaptive.limit == 5


def test_bad_breaker_and_bulkhead_values_name_the_field() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        load_policies({"p": {"circuit_breaker": {"failure_rate": 1.5}}})
    assert info.value.errors()[0]["loc"] == ("p", "circuit_breaker", "failure_rate")
    with pytest.raises(pydantic.ValidationError) as info:
        load_policies({"p": {"bulkhead": {"max_concurrent": 0}}})
    assert info.value.errors()[0]["loc"] == ("p", "bulkhead", "max_concurrent")
    with pytest.raises(pydantic.ValidationError):
        load_policies({"p": {"adaptive_bulkhead": {"minimum": 5, "maximum": 2}}})
