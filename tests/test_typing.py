"""Decorators keep signatures for type checkers: mypy --strict accepts the good cases and
rejects a call with the wrong argument type."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api as mypy_api

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
def test_wrong_arguments_to_decorated_functions_are_type_errors() -> None:
    output, status = run_mypy(HERE / "typing_cases_bad")
    assert status == 1, output
    errors = sorted(line for line in output.splitlines() if ": error:" in line)
    assert len(errors) == 2, output
    assert "bad_call.py:13: error:" in errors[0], output
    assert '"takes_int"' in errors[0], output
    assert "bad_call.py:22: error:" in errors[1], output
    assert '"takes_int_async"' in errors[1], output
    assert all("[arg-type]" in line for line in errors), output
