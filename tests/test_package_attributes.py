"""``import resilient`` reaches every subpackage as an attribute, imported on first use."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SUBPACKAGES = ["config", "instrumentation", "integrations", "stores", "testing"]


def _run(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_import_resilient_imports_no_subpackage_and_not_pydantic() -> None:
    _run(
        """
        import sys
        import resilient

        loaded = sorted(m for m in sys.modules if m.startswith("resilient."))
        for name in ("config", "instrumentation", "integrations", "stores", "testing"):
            assert f"resilient.{name}" not in sys.modules, loaded
        assert "pydantic" not in sys.modules
        assert "redis" not in sys.modules
        """
    )


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_each_subpackage_is_an_attribute_loaded_on_first_use(name: str) -> None:
    _run(
        f"""
        import importlib
        import sys
        import resilient

        assert "resilient.{name}" not in sys.modules
        module = resilient.{name}
        assert module is importlib.import_module("resilient.{name}")
        assert "resilient.{name}" in sys.modules
        """
    )


def test_the_documented_names_are_reachable_from_the_package() -> None:
    import resilient

    assert resilient.config.load_policies is not None
    assert resilient.stores.RedisStore is not None
    assert resilient.testing.FakeClock is not None
    assert resilient.instrumentation.subscribe is not None
    assert resilient.integrations.__doc__


def test_an_unknown_attribute_is_still_an_attribute_error() -> None:
    import resilient

    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        resilient.nonexistent  # type: ignore[attr-defined]  # noqa: B018


def test_dir_lists_the_subpackages() -> None:
    import resilient

    assert set(SUBPACKAGES) <= set(dir(resilient))
    assert "Pipeline" in dir(resilient)
