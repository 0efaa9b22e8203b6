"""The scripts in examples/ run to the end and print what they are meant to show.

Each runs in a fresh interpreter (the same one as the tests), with a time limit, and talks only
to 127.0.0.1. The scripts check their own results with ``assert``; these tests check the exit
status and a few lines of output. examples/storm.py, the demo, has tests of its own
(tests/test_demo.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT = 60


def run(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Runs ``examples/<script>`` and returns its standard output; fails on a non-zero exit."""
    environment = dict(os.environ)
    environment.pop("REDIS_URL", None)  # only what a test passes on purpose
    environment.update(env or {})
    src = str(ROOT / "src")
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (src, environment.get("PYTHONPATH")) if p
    )
    try:
        result = subprocess.run(
            [sys.executable, str(EXAMPLES / script), *args],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"examples/{script} did not finish in {TIMEOUT} s", pytrace=False)
    if result.returncode != 0:
        pytest.fail(
            f"examples/{script} exited {result.returncode}\n{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return result.stdout


def test_every_example_has_a_test() -> None:
    tested = {
        "decorate.py",
        "fastapi_app.py",
        "httpx_client.py",
        "shared_rate_limit.py",
        "payments.py",
        "policies_from_toml.py",
        "testing_with_fake_clock.py",
        "storm.py",  # tests/test_demo.py
        "storm_services.py",  # the demo's services, run by tests/test_demo.py
        "storm_timeline.py",  # the demo's PNG, written in tests/test_demo.py
    }
    assert {path.name for path in EXAMPLES.glob("*.py")} == tested


def test_decorate() -> None:
    output = run("decorate.py")
    assert "flaky() -> ok after 3 attempts" in output
    assert "refused without calling" in output
    assert "breaker: OPEN" in output


def test_fastapi_app_serves_and_stops() -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    output = run("fastapi_app.py")
    assert "replayed: true" in output
    assert "GET /search x5: [200, 200, 200, 429, 429]" in output


def test_httpx_client() -> None:
    pytest.importorskip("httpx")
    output = run("httpx_client.py")
    assert "-> 200 {'stock': 7}" in output
    assert "refused by its breaker" in output
    assert "'OPEN'" in output
    assert "'CLOSED'" in output


def test_shared_rate_limit_across_processes(redis_url: str) -> None:
    output = run("shared_rate_limit.py", "--redis", redis_url)
    assert "the limit held" in output


def test_shared_rate_limit_needs_a_url() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "shared_rate_limit.py")],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "REDIS_URL"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 2
    assert "REDIS_URL" in result.stderr


def test_payments_in_memory() -> None:
    output = run("payments.py")
    assert "replayed: true" in output
    assert "same key, other amount: 422" in output
    assert "charged: 1 time(s)" in output


def test_payments_in_redis(redis_url: str) -> None:
    output = run("payments.py", env={"REDIS_URL": redis_url})
    assert f"records in Redis at {redis_url}" in output
    assert "charged: 1 time(s)" in output


def test_policies_from_toml() -> None:
    output = run("policies_from_toml.py")
    assert "inventory: ['Timeout', 'Retry', 'CircuitBreaker', 'Bulkhead']" in output
    assert "a bad file is refused: [('inventory', 'retry', 'attempts')" in output


def test_testing_with_fake_clock() -> None:
    output = run("testing_with_fake_clock.py")
    assert "6 passed" in output
