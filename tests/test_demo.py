"""The demo, examples/storm.py, runs to the end and shows what it is meant to show.

It runs as ``make demo`` runs it, in a subprocess that starts the upstream and both gateways as
processes of their own (uvicorn on 127.0.0.1). The table it prints is parsed and checked with
margins that hold on a busy machine: every process uses a fraction of a core, and what is
compared is the services' behaviour (how many requests reached the upstream, how long clients
waited), not the speed of the machine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "storm.py"
TIMEOUT = 240  # the demo takes about 45 s (--quick: about 25 s)

for module in ("uvicorn", "starlette", "httpx", "matplotlib"):
    pytest.importorskip(module, reason="the demo needs the 'demo' extra")

ROWS = (
    "success rate",
    "p50 latency",
    "p99 latency",
    "upstream requests in outage",
    "duplicated side effects",
    "breaker transitions",
    "requests shed",
)
COMPARED = ROWS[:5]
PHASES = ("healthy", "slow", "failing", "throttled", "recovered")

Table = dict[str, dict[str, object]]


def number(cell: str) -> float:
    """``"37.6%"`` → 0.376, ``"1302 ms"`` → 1.302 (seconds), ``"296"`` → 296."""
    if cell.endswith("%"):
        return float(cell[:-1]) / 100
    if cell.endswith(" ms"):
        return float(cell[:-3]) / 1000
    return float(cell)


def parse_table(output: str) -> Table:
    """The final table: ``{row: {"naive": n, "protected": n, "better": .., "winner": ..}}``."""
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["naive", "protected"])
    table: Table = {}
    for line in lines[header + 2 :]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) != 5:
            break
        label, naive, protected, better, winner = cells
        table[label] = {
            "naive": number(naive),
            "protected": number(protected),
            "better": better,
            "winner": winner,
        }
    return table


def progress_lines(output: str) -> list[tuple[str, str]]:
    """The per-phase lines: ``[(mode, phase), ...]``."""
    pattern = re.compile(r"^(naive|protected)\s+(\w+)\s+\[[#.]+\]")
    return [
        (match[1], match[2])
        for match in map(pattern.match, output.splitlines())
        if match is not None
    ]


def service_urls(output: str) -> list[str]:
    return re.findall(r"http://127\.0\.0\.1:\d+", output)


def run_demo(*options: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}
    try:
        result = subprocess.run(
            [sys.executable, str(DEMO), *options],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"examples/storm.py {' '.join(options)} did not finish in {timeout}s")
    assert result.returncode == 0, f"the demo failed:\n{result.stdout}\n{result.stderr}"
    return result


def assert_stopped(urls: list[str]) -> None:
    """Nothing answers at ``urls`` any more: the services' processes are gone."""
    assert urls
    for url in urls:
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/_health", timeout=2.0, trust_env=False)


SAMPLE = """\
resilient storm demo: ...
naive     slow      [########################]  5.0/5.0s   100 calls    20 ok    43 failed

                                   naive   protected  better  winner
-----------------------------------------------------------------------
success rate                       37.6%       47.2%  higher  protected
p50 latency                      1302 ms       73 ms   lower  protected
upstream requests in outage          296          40   lower  protected
breaker transitions                    0          17       -  (shown, not compared)

the protected side is better on 3 of the 3 compared rows
"""


def test_parsers_read_the_demo_format() -> None:
    table = parse_table(SAMPLE)
    assert list(table) == [
        "success rate",
        "p50 latency",
        "upstream requests in outage",
        "breaker transitions",
    ]
    assert table["success rate"]["naive"] == pytest.approx(0.376)
    assert table["p50 latency"]["protected"] == pytest.approx(0.073)
    assert table["upstream requests in outage"]["naive"] == 296
    assert table["breaker transitions"]["winner"] == "(shown, not compared)"
    assert progress_lines(SAMPLE) == [("naive", "slow")]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The whole demo, as ``make demo`` runs it, with its PNG in a temporary directory."""
    png = tmp_path_factory.mktemp("demo") / "timeline.png"
    return run_demo("--png", str(png)).stdout, png


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 30)
def test_the_demo_prints_a_line_per_phase_and_every_row(full_run: tuple[str, Path]) -> None:
    output, _ = full_run
    assert progress_lines(output) == [
        (mode, phase) for mode in ("naive", "protected") for phase in PHASES
    ]
    table = parse_table(output)
    assert tuple(table) == ROWS, output
    for label in COMPARED:
        assert table[label]["better"] in ("higher", "lower")
    for label in ROWS[5:]:
        assert table[label]["better"] == "-"
        assert table[label]["winner"] == "(shown, not compared)"
    assert "how to read it:" in output
    for label in ROWS:
        assert f"  {label}: " in output  # each row is explained


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 30)
def test_naive_retries_amplify_the_outage_and_resilient_does_not(
    full_run: tuple[str, Path],
) -> None:
    output, _ = full_run
    table = parse_table(output)
    outage = table["upstream requests in outage"]
    # Naive: up to 3 requests per call for 4.5 s of outage (140 to 310 seen); protected: the
    # breaker's trial calls, and the 429 phase's requests the rate limit lets through (40 to 70).
    assert outage["protected"] < 0.7 * outage["naive"], output  # type: ignore[operator]
    transitions = table["breaker transitions"]
    assert transitions["naive"] == 0, output
    assert transitions["protected"] >= 2, output  # it opened, and closed again
    shed = table["requests shed"]
    assert shed["naive"] == 0, output
    assert shed["protected"] > 0, output


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 30)
def test_the_protected_gateway_wins_every_compared_row(full_run: tuple[str, Path]) -> None:
    output, _ = full_run
    table = parse_table(output)
    success, p50, p99 = table["success rate"], table["p50 latency"], table["p99 latency"]
    duplicated = table["duplicated side effects"]
    # The slow phase decides it: behind the naive gateway almost no call succeeds once the
    # queue outgrows the clients' timeout; behind the protected one about half do.
    assert success["protected"] >= success["naive"] + 0.05, output  # type: ignore[operator]
    # The median call: naive clients wait for three timeouts or three slow 503s, protected ones
    # get an open circuit's answer at once.
    assert p50["protected"] < p50["naive"] / 2, output  # type: ignore[operator]
    # The slowest calls: three client timeouts (2.4 s) against at most three gateway deadlines
    # (1.2 s; the rate limit usually refuses the third attempt at once).
    assert p99["protected"] < p99["naive"], output  # type: ignore[operator]
    assert duplicated["protected"] < duplicated["naive"], output  # type: ignore[operator]
    for label in COMPARED:
        assert table[label]["winner"] == "protected", output
    assert "the protected side is better on 5 of the 5 compared rows" in output


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 30)
def test_the_timeline_png_is_written_where_the_demo_says(full_run: tuple[str, Path]) -> None:
    output, png = full_run
    assert f"timeline written to {png.resolve()}" in output
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000  # four rows of plots for each run, not an empty canvas


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 30)
def test_the_services_are_stopped_when_the_demo_ends(full_run: tuple[str, Path]) -> None:
    output, _ = full_run
    urls = service_urls(output)
    assert len(urls) == 3, output
    assert_stopped(urls)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ctrl_c_stops_the_services(tmp_path: Path) -> None:
    paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}
    process = subprocess.Popen(
        [sys.executable, str(DEMO), "--quick", "--png", str(tmp_path / "t.png")],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:  # the demo prints the services' URLs once they are ready
            lines.append(line)
            if line.startswith("services:"):
                break
        urls = service_urls("".join(lines))
        assert len(urls) == 3, "".join(lines)
        time.sleep(1.0)  # into the naive run
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stdout + stderr
    assert "interrupted" in stderr
    assert_stopped(urls)


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 30)
def test_the_demo_keeps_the_protected_gateway_state_in_redis(
    redis_url: str, tmp_path: Path
) -> None:
    import redis

    output = run_demo("--quick", "--redis", redis_url, "--png", str(tmp_path / "t.png")).stdout
    assert f"stores: Redis at {redis_url}" in output
    table = parse_table(output)
    assert tuple(table) == ROWS, output
    outage = table["upstream requests in outage"]
    assert outage["protected"] < 0.7 * outage["naive"], output  # type: ignore[operator]
    assert_stopped(service_urls(output))
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match="*storm-*", count=1000))
        assert keys, "the protected gateway kept nothing in Redis"
        assert all(client.ttl(key) > 0 for key in keys)  # every key expires
    finally:
        client.close()
