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

    def load(name: str) -> types.ModuleType:
        module = types.ModuleType(f"bench_{name}")

        def run(report: Report) -> None:
            report.add(name, f"resilient {name}", 1e-6)

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
