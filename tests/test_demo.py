"""The demo, examples/storm.py, runs to the end and shows what it is meant to show.

It runs in a subprocess with ``--quick``; the numbers it prints are parsed from its table and
checked with wide margins, so that a slow or busy machine still passes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "storm.py"
TIMEOUT = 90  # the quick demo takes about 5 s

for module in ("uvicorn", "starlette", "httpx"):
    pytest.importorskip(module, reason="the demo needs the 'demo' extra")

Table = dict[tuple[str, str], dict[str, float]]


def parse_table(output: str) -> Table:
    """The demo's table: ``{(strategy, phase): {column: number}}``."""
    lines = output.splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.split()[:2] == ["strategy", "phase"])
    columns = lines[header_at].split()
    table: Table = {}
    for line in lines[header_at + 1 :]:
        cells = line.split()
        if len(cells) != len(columns):
            break
        strategy, phase, *numbers = cells
        table[strategy, phase] = {
            name: float(value) for name, value in zip(columns[2:], numbers, strict=True)
        }
    return table


def parse_transitions(output: str) -> list[tuple[str, str, str]]:
    """The circuit breaker's state changes: ``[(phase, old, new), ...]``."""
    pattern = re.compile(r"^\s+(\w+)\s+\+[\d.]+s\s+(\w+) -> (\w+)$")
    return [
        (match[1], match[2], match[3])
        for match in map(pattern.match, output.splitlines())
        if match is not None
    ]


def test_parsers_read_the_demo_format() -> None:
    output = "\n".join(
        [
            "resilient storm demo: ...",
            "",
            "strategy   phase     secs   calls  requests  req/call   req/s      ok",
            "naive      outage     1.0      81       359      4.43     359      17",
            "resilient  outage     1.0      81        32      0.40      32       0",
            "",
            "circuit breaker 'upstream', resilient run (time since the phase began):",
            "  outage    +0.21s  closed -> open",
            "  recovery  +0.11s  half_open -> closed",
        ]
    )
    table = parse_table(output)
    assert table["naive", "outage"]["req/call"] == 4.43
    assert table["resilient", "outage"]["requests"] == 32
    assert parse_transitions(output) == [
        ("outage", "closed", "open"),
        ("recovery", "half_open", "closed"),
    ]


@pytest.fixture(scope="module")
def demo_output() -> str:
    paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}
    try:
        result = subprocess.run(
            [sys.executable, str(DEMO), "--quick"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"examples/storm.py --quick did not finish in {TIMEOUT}s", pytrace=False)
    assert result.returncode == 0, f"the demo failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_the_demo_prints_every_strategy_and_phase(demo_output: str) -> None:
    table = parse_table(demo_output)
    assert set(table) == {
        (strategy, phase)
        for strategy in ("naive", "resilient")
        for phase in ("healthy", "outage", "recovery")
    }
    for row in table.values():
        assert row["calls"] > 0
        assert row["ok"] + row["failed"] + row["rejected"] == row["calls"]


@pytest.mark.slow
def test_naive_retries_amplify_the_outage_and_resilient_does_not(demo_output: str) -> None:
    table = parse_table(demo_output)
    naive = table["naive", "outage"]
    guarded = table["resilient", "outage"]
    # Naive clients send up to 5 requests per call (fewer only when retries spill into the
    # recovery); resilient ones send about one per call until the breaker opens, then almost none.
    assert naive["req/call"] >= 2.0, demo_output
    assert guarded["req/call"] <= 1.2, demo_output
    assert naive["req/call"] >= 2 * guarded["req/call"], demo_output
    assert guarded["requests"] < naive["requests"], demo_output
    assert guarded["rejected"] > 0, demo_output  # the open circuit answered at once


@pytest.mark.slow
def test_the_breaker_opens_in_the_outage_and_closes_in_the_recovery(demo_output: str) -> None:
    transitions = parse_transitions(demo_output)
    assert ("outage", "closed", "open") in transitions, demo_output
    assert transitions[-1][2] == "closed", demo_output
    assert transitions[-1][0] == "recovery", demo_output
