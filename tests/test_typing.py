"""Decorators keep signatures for type checkers: mypy --strict accepts the good cases and
rejects a call with the wrong argument type."""

from __future__ import annotations

from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

HERE = Path(__file__).parent


def run_mypy(path: Path) -> tuple[str, int]:
    stdout, stderr, status = mypy_api.run(
        [
            "--strict",
            "--no-incremental",
            "--cache-dir=/dev/null",
            "--python-version=3.10",
            str(path),
        ]
    )
    return stdout + stderr, status


@pytest.mark.slow
def test_decorated_functions_keep_their_signatures() -> None:
    output, status = run_mypy(HERE / "typing_cases")
    assert status == 0, output


@pytest.mark.slow
def test_wrong_argument_to_decorated_function_is_a_type_error() -> None:
    output, status = run_mypy(HERE / "typing_cases_bad")
    assert status == 1, output
    assert '"takes_int" has incompatible type "str"; expected "int"' in output
