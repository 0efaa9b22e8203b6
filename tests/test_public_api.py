from __future__ import annotations

import inspect
import types

import pytest

import resilient


def test_all_is_sorted() -> None:
    assert resilient.__all__ == sorted(resilient.__all__)


def test_all_has_no_duplicates() -> None:
    assert len(resilient.__all__) == len(set(resilient.__all__))


@pytest.mark.parametrize("name", resilient.__all__)
def test_every_exported_name_exists_and_is_documented(name: str) -> None:
    value = getattr(resilient, name)
    assert inspect.getdoc(value), f"resilient.{name} has no docstring"


def _defined_in_resilient(value: object) -> bool:
    module = getattr(value, "__module__", None) or ""
    return module == "resilient" or module.startswith("resilient.")


def test_all_is_complete() -> None:
    """Every public class and function the package defines and re-exports is in __all__."""
    public = {
        name
        for name, value in vars(resilient).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and _defined_in_resilient(value)
    }
    assert public - set(resilient.__all__) == set()


@pytest.mark.parametrize(
    "module",
    ["resilient.testing", "resilient.instrumentation", "resilient.config", "resilient.stores"],
)
def test_public_modules_document_their_names(module: str) -> None:
    imported = __import__(module, fromlist=["__all__"])
    assert imported.__doc__
    for name in imported.__all__:
        value = getattr(imported, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue  # constants and type aliases cannot carry docstrings
        assert inspect.getdoc(getattr(imported, name)), f"{module}.{name} has no docstring"
