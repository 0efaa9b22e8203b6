"""``python -m benchmarks`` leaves the committed results alone unless asked to replace them."""

from __future__ import annotations

import types
from pathlib import Path

import benchmarks.__main__ as cli
import pytest
from benchmarks._harness import Report


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the committed and latest locations at a scratch copy, and fake the benchmarks."""
    committed = tmp_path / "results"
    committed.mkdir()
    (committed / "RESULTS.md").write_text("committed\n")
    monkeypatch.setattr(cli, "COMMITTED", committed)
    monkeypatch.setattr(cli, "LATEST", committed / "latest")
    monkeypatch.setattr(cli, "available", lambda: ["alpha", "beta"])
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{cli.START}\nold\n{cli.END}\n\n## after\n")
    monkeypatch.setattr(cli, "README", readme)
    page = tmp_path / "docs" / "benchmarks.md"
    page.parent.mkdir()
    page.write_text(f"# Benchmarks\n\n{cli.START}\nold\n{cli.END}\n\n## method\n")
    monkeypatch.setattr(cli, "DOCS_PAGE", page)
    monkeypatch.setattr(cli, "DOCS_IMAGES", tmp_path / "docs" / "img" / "benchmarks")

    def load(name: str) -> types.ModuleType:
        module = types.ModuleType(f"bench_{name}")

        def run(report: Report) -> None:
            report.add(name, f"resilient {name}", 1e-6)
            report.target(f"{name} target", 1e-6, 4e-6, at_most=0.5, peer="peer")

        module.run = run  # type: ignore[attr-defined]
        return module

    monkeypatch.setattr(cli, "load", load)
    return committed


def test_a_run_writes_to_latest_and_keeps_the_committed_results(results: Path) -> None:
    assert cli.main([]) == 0
    assert (results / "RESULTS.md").read_text() == "committed\n"
    latest = (results / "latest" / "RESULTS.md").read_text()
    assert "resilient alpha" in latest
    assert "resilient beta" in latest
    assert (results / "latest" / "results.json").exists()


def test_a_partial_run_writes_only_to_latest(results: Path) -> None:
    assert cli.main(["beta"]) == 0
    assert (results / "RESULTS.md").read_text() == "committed\n"
    latest = (results / "latest" / "RESULTS.md").read_text()
    assert "resilient beta" in latest
    assert "resilient alpha" not in latest


def test_output_chooses_another_directory(results: Path, tmp_path: Path) -> None:
    assert cli.main(["--output", str(tmp_path / "mine"), "alpha"]) == 0
    assert (tmp_path / "mine" / "RESULTS.md").exists()
    assert not (results / "latest").exists()
    assert cli.main([f"--output={tmp_path / 'other'}"]) == 0
    assert (tmp_path / "other" / "results.json").exists()


def test_update_committed_replaces_the_committed_results(results: Path) -> None:
    assert cli.main(["--update-committed"]) == 0
    assert "resilient alpha" in (results / "RESULTS.md").read_text()
    assert not (results / "latest").exists()
    readme = cli.README.read_text()
    assert "old" not in readme
    assert readme.startswith(f"# x\n\n{cli.START}\n")
    assert readme.endswith(f"{cli.END}\n\n## after\n")
    assert "| alpha target | 1000 ns | 4000 ns | 0.25x | <= 0.5x peer | met |" in readme
    assert "benchmarks/results/targets.png" in readme


def test_update_committed_rewrites_the_docs_results_with_links_inside_docs(
    results: Path,
) -> None:
    assert cli.main(["--update-committed"]) == 0
    page = cli.DOCS_PAGE.read_text()
    assert "old" not in page
    assert page.endswith(f"{cli.END}\n\n## method\n")
    assert "| alpha target | 1000 ns | 4000 ns | 0.25x | <= 0.5x peer | met |" in page
    assert "](img/benchmarks/targets.png)" in page
    assert "](img/benchmarks/scaling.png)" in page
    assert "](benchmarks/results/" not in page  # links outside docs/ break the site
    if (results / "targets.png").exists():  # charts need matplotlib
        assert (cli.DOCS_IMAGES / "targets.png").read_bytes() == (
            results / "targets.png"
        ).read_bytes()


def test_a_run_that_is_not_committed_leaves_the_readme_alone(results: Path) -> None:
    before = cli.README.read_text()
    page = cli.DOCS_PAGE.read_text()
    assert cli.main([]) == 0
    assert cli.main(["--quick"]) == 0
    assert cli.README.read_text() == before
    assert cli.DOCS_PAGE.read_text() == page


def test_a_readme_without_markers_is_left_alone(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    assert not cli.update_readme(readme, "block")
    assert readme.read_text() == "# no markers\n"


@pytest.mark.parametrize("page", ["README.md", "docs/benchmarks.md"])
def test_the_pages_have_the_benchmark_markers(page: str) -> None:
    text = (Path(cli.__file__).parent.parent / page).read_text()
    assert text.count(cli.START) == 1
    assert text.count(cli.END) == 1
    assert text.index(cli.START) < text.index(cli.END)


@pytest.mark.parametrize(
    "argv",
    [
        ["--update-committed", "alpha"],
        ["--update-committed", "--output", "x"],
        ["gamma"],
        ["--fast"],
        ["--output"],
    ],
)
def test_command_lines_that_cannot_run_change_nothing(
    results: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    assert (results / "RESULTS.md").read_text() == "committed\n"
    assert not (results / "latest").exists()
    assert "available: alpha beta" in capsys.readouterr().err


def test_the_latest_results_are_ignored_by_git() -> None:
    root = Path(cli.__file__).parent.parent
    assert "benchmarks/results/latest/" in (root / ".gitignore").read_text().splitlines()


# --- the harness, the quick mode, the report writers and the target verdicts ---------------

import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402

import benchmarks._harness as harness  # noqa: E402
from benchmarks._harness import Timing, verdict  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> harness.Settings:
    """Settings small enough for a test: loops of a fraction of a millisecond, two rounds."""
    for name, value in {
        "loop_seconds": 0.0005,
        "rounds": 2,
        "scale": 0.001,
        "import_runs": 1,
        "max_keys_exponent": 3,
        "threads": (1, 2),
        "tasks": (1, 10),
        "scaling_operations": 200,
        "task_operations": 100,
        "scaling_repeats": 1,
    }.items():
        monkeypatch.setattr(harness.SETTINGS, name, value)
    return harness.SETTINGS


def test_compare_times_every_candidate_in_turns(tiny: harness.Settings) -> None:
    calls: list[str] = []
    times = harness.compare(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, number=100
    )
    assert set(times) == {"a", "b"}
    for timing in times.values():
        assert timing.samples == 2
        assert 0 < timing.low <= timing.median <= timing.high
    # warm-up then two rounds: the second round starts with the other candidate
    assert calls.count("a") == calls.count("b") == 10 + 2 * 100


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_compare_async_runs_in_one_event_loop(tiny: harness.Settings, backend: str) -> None:
    loops: set[object] = set()

    async def probe() -> None:
        import anyio.lowlevel

        # The loop itself (asyncio) or its trio token, held here: `current_token()` makes a
        # new wrapper object on each call, whose id may or may not be reused.
        loops.add(anyio.lowlevel.current_token().native_token)

    times = harness.compare_async({"probe": probe, "again": probe}, backend)
    assert set(times) == {"probe", "again"}
    assert len(loops) == 1
    assert all(t.median > 0 for t in times.values())


def test_compare_paired_reports_medians_and_quartiles(tiny: harness.Settings) -> None:
    times = harness.compare_paired({"x": lambda: None, "y": lambda: sum(range(50))}, samples=10)
    assert set(times) == {"x", "y"}
    for timing in times.values():
        assert timing.samples == 200  # scaled samples, never fewer than 200
        assert timing.low <= timing.median <= timing.high
    assert harness.measure_paired({"x": lambda: None}, samples=10)["x"] > 0


def test_timing_spread() -> None:
    timing = Timing.of([1.0, 2.0, 3.0])
    assert (timing.median, timing.low, timing.high, timing.samples) == (2.0, 1.0, 3.0, 3)
    assert timing.spread == pytest.approx(0.5)
    quartiles = Timing.of([float(v) for v in range(1, 10)], quartiles=True)
    assert quartiles.low > 1.0
    assert quartiles.high < 9.0


@pytest.mark.parametrize(
    ("ours", "theirs", "at_most", "strict", "expected"),
    [
        (4.0, 100.0, 0.05, False, True),
        (5.0, 100.0, 0.05, False, True),
        (6.0, 100.0, 0.05, False, False),
        (1.0, 1.0, 1.0, False, True),
        (1.0, 1.0, 1.0, True, False),
        (0.9, 1.0, 1.0, True, True),
        (0.0, 0.0, 0.5, False, True),
        (1.0, 0.0, 0.5, False, False),
        (0.0, 0.0, 1.0, True, False),
        (math.nan, 1.0, 1.0, False, False),
        (1.0, math.nan, 1.0, False, False),
    ],
)
def test_verdict(ours: float, theirs: float, at_most: float, strict: bool, expected: bool) -> None:
    assert verdict(ours, theirs, at_most, strict=strict) is expected


def test_report_targets_state_the_goal_and_the_verdict() -> None:
    report = Report()
    assert report.target("fast", Timing(1.0, 0.9, 1.1, 3), 10.0, at_most=0.2, peer="them")
    assert not report.target("slow", 3.0, 10.0, at_most=0.2, peer="them", headline=False)
    assert not report.target("tie", 1.0, 1.0, at_most=1.0, strict=True, peer="backoff")
    assert report.limit("small", 4e-6, at_most=5e-6)
    fast, slow, tie, small = report.checks
    assert (fast.goal, fast.ratio, fast.verdict) == ("<= 0.2x them", 0.1, "met")
    assert (slow.verdict, slow.headline) == ("MISSED", False)
    assert tie.goal == "< backoff"
    assert (small.goal, small.ratio, small.passed) == ("<= 5000 ns", None, True)
    table = "\n".join(report.headline_table())
    assert "| fast |" in table
    assert "**MISSED**" in table
    # headline targets first
    assert table.index("| small |") < table.index("| slow |")


def _sample_report() -> Report:
    report = Report(mode="quick", peers={"tenacity": "9.2.1"})
    report.add("group a", "resilient thing", Timing(1e-7, 0.9e-7, 1.2e-7, 5), baseline=True)
    report.add("group a", "peer thing", 3e-7)
    report.target("thing vs peer", 1e-7, 3e-7, at_most=0.5, peer="peer")
    report.target("other vs peer", 3e-7, 1e-7, at_most=0.5, peer="peer")
    report.check("a plain check", True, "detail")
    report.curve(
        "limiter memory per key",
        "resilient TokenBucket",
        [1e3, 1e4],
        [200, 210],
        xlabel="keys",
        unit="bytes per key",
    )
    report.curve(
        "asyncio tasks",
        "resilient Bulkhead",
        [1, 10],
        [1e5, 9e4],
        xlabel="tasks",
        unit="operations per second",
    )
    return report


def test_report_writes_markdown_json_and_charts(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    written = _sample_report().write(tmp_path)
    names = {p.name for p in written}
    assert names == {"RESULTS.md", "results.json", "results.png", "targets.png", "scaling.png"}
    for chart in ("results.png", "targets.png", "scaling.png"):
        assert (tmp_path / chart).read_bytes().startswith(PNG)

    markdown = (tmp_path / "RESULTS.md").read_text()
    assert "**quick run**" in markdown
    assert "2 of 3 targets met" in markdown
    assert "| thing vs peer | 100 ns | 300 ns | 0.33x | <= 0.5x peer | met |" in markdown
    assert "| other vs peer | 300 ns | 100 ns | 3.00x | <= 0.5x peer | **MISSED** |" in markdown
    assert "| **resilient thing** | 100 ns | 90 ns to 120 ns | 1.00 |" in markdown
    assert "### limiter memory per key (bytes per key)" in markdown
    assert "tenacity 9.2.1" in markdown

    data = json.loads((tmp_path / "results.json").read_text())
    assert data["machine"]["mode"] == "quick"
    assert [c["verdict"] for c in data["checks"]] == ["met", "MISSED", "met"]
    assert data["rows"][0]["low"] == pytest.approx(0.9e-7)
    assert data["series"][0]["ys"] == [200, 210]
    assert data["peers"] == {"tenacity": "9.2.1"}


def test_no_matplotlib_still_writes_the_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    written = _sample_report().write(tmp_path)
    assert {p.name for p in written} == {"RESULTS.md", "results.json"}


def test_quick_configures_the_short_settings(results: Path) -> None:
    seen: list[tuple[bool, float]] = []

    def load(name: str) -> types.ModuleType:
        module = types.ModuleType(name)
        module.run = lambda report: seen.append(  # type: ignore[attr-defined]
            (harness.SETTINGS.quick, harness.SETTINGS.loop_seconds)
        )
        return module

    cli.load = load  # restored by the fixture's monkeypatch of the same attribute
    try:
        assert cli.main(["--quick", "alpha"]) == 0
        assert seen[-1] == (True, harness.QUICK.loop_seconds)
        data = json.loads((results / "latest" / "results.json").read_text())
        assert data["machine"]["mode"] == "quick"
        assert cli.main(["alpha"]) == 0
        assert seen[-1] == (False, harness.FULL.loop_seconds)
    finally:
        harness.configure(False)


def test_quick_results_cannot_replace_the_committed_ones(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--quick", "--update-committed"]) == 2
    assert "drop --quick" in capsys.readouterr().err
    assert (results / "RESULTS.md").read_text() == "committed\n"


def test_the_quick_settings_are_smaller_than_the_full_ones() -> None:
    quick, full = harness.QUICK, harness.FULL
    assert quick.quick
    assert not full.quick
    assert quick.loop_seconds < full.loop_seconds
    assert quick.rounds < full.rounds
    assert quick.scale < full.scale
    assert quick.max_keys_exponent == 5
    assert full.max_keys_exponent == 6
    assert full.threads == (1, 2, 4, 8)
    assert full.tasks[0] == 1
    assert full.tasks[-1] == 1000


def test_every_benchmark_module_has_a_run_function() -> None:
    names = cli.available()
    for expected in (
        "asgi",
        "baseline",
        "breaker",
        "bulkhead",
        "composite",
        "degradation",
        "httpx",
        "idempotency",
        "import",
        "rate_limit",
        "retry",
        "scaling",
        "timeout",
    ):
        assert expected in names
    for name in names:
        source = (Path(cli.__file__).parent / f"bench_{name}.py").read_text()
        assert "\ndef run(report: Report) -> None:" in source


def test_the_pinned_peers_match_the_bench_extra() -> None:
    from packaging.requirements import Requirement
    from packaging.version import Version

    root = Path(cli.__file__).parent.parent
    pins = {}
    for line in (root / "benchmarks" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", line
            pins[requirement.name.lower()] = Version(specifier.version)
    for peer in ("tenacity", "pybreaker", "aiobreaker", "purgatory", "pyresilience", "hyx"):
        assert peer in pins
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    extra = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["bench"]
    allowed = {Requirement(r).name.lower(): Requirement(r).specifier for r in extra}
    assert "matplotlib" in allowed
    for name, version in pins.items():
        assert name in allowed, f"{name} is pinned but not in the bench extra"
        assert allowed[name].contains(version), f"{name}=={version} is outside {allowed[name]}"
    assert re.search(r"-r \$\(PEERS\)", (root / "Makefile").read_text())


def test_a_real_module_runs_with_tiny_settings(tiny: harness.Settings) -> None:
    from benchmarks import bench_baseline, bench_timeout

    report = Report()
    bench_baseline.run(report)
    bench_timeout.run(report)
    assert {r.group for r in report.rows} >= {
        "baseline",
        "async with timeout(2.0) (asyncio)",
        "async with timeout(2.0) (trio)",
    }
    assert all(r.seconds > 0 for r in report.rows)
    assert any(c.goal == "<= 0.7x asyncio.timeout" for c in report.checks)


def test_scaling_measures_throughput_and_memory_with_tiny_settings(
    tiny: harness.Settings,
) -> None:
    pytest.importorskip("limits")
    pytest.importorskip("aiolimiter")
    pytest.importorskip("circuitbreaker")
    from benchmarks import bench_scaling

    report = Report()
    bench_scaling.run(report)
    figures = {s.figure for s in report.series}
    assert "limiter memory per key" in figures
    assert "asyncio tasks" in figures
    assert "bulkhead: threads" in figures
    for series in report.series:
        assert len(series.xs) == len(series.ys)
        assert all(y > 0 for y in series.ys), series


def test_bytes_per_key_counts_what_the_keys_hold() -> None:
    from benchmarks.bench_scaling import bytes_per_key

    held: dict[str, bytes] = {}
    per_key = bytes_per_key(
        lambda key: held.__setitem__(key, bytes(1000)), [str(i) for i in range(200)]
    )
    assert 1000 <= per_key < 1400


def test_bytes_per_key_curve_reads_every_checkpoint_in_one_pass() -> None:
    from benchmarks.bench_scaling import bytes_per_key_curve

    held: dict[str, bytes] = {}
    seen: list[str] = []

    def acquire(key: str) -> None:
        seen.append(key)
        held[key] = bytes(1000)

    keys = [str(i) for i in range(300)]
    curve = bytes_per_key_curve(acquire, keys, [100, 300])
    assert seen == keys
    assert len(curve) == 2
    assert all(1000 <= value < 1500 for value in curve)
