"""Run the benchmarks: ``python -m benchmarks [options] [name ...]`` (``retry``, ``baseline``...).

Options: ``--quick`` (shorter loops, fewer rounds and samples, memory up to 10^5 keys: the
everyday run of ``make bench-quick``), ``--output DIR``, ``--update-committed``.

Every ``benchmarks/bench_*.py`` module has ``run(report)``; with no names, all of them run, in
alphabetical order. Missed targets are reported, not turned into a failing exit status: timings
depend on the machine.

Where the results go (RESULTS.md, results.json, and the charts results.png, targets.png and
scaling.png):

- by default, ``benchmarks/results/latest/`` (ignored by git), replaced by each run; the
  committed results in ``benchmarks/results/`` are left alone;
- ``--output DIR``: to DIR instead;
- ``--update-committed``: to ``benchmarks/results/``, the files under version control. Only a
  run of every benchmark, and not a quick one, may replace them (``make bench-commit``).
"""

from __future__ import annotations

import importlib
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from . import _harness
from ._harness import Report

HERE = Path(__file__).parent
#: The results under version control: replaced only on request (``--update-committed``).
COMMITTED = HERE / "results"
#: Where a run writes by default: a scratch copy that git ignores.
LATEST = COMMITTED / "latest"
#: The pinned peer libraries.
REQUIREMENTS = HERE / "requirements.txt"
#: The README whose benchmark block a committed run rewrites.
README = HERE.parent / "README.md"
#: The documentation page whose results block a committed run rewrites, and where its charts go.
DOCS_PAGE = HERE.parent / "docs" / "benchmarks.md"
DOCS_IMAGES = HERE.parent / "docs" / "img" / "benchmarks"
START = "<!-- benchmarks:start -->"
END = "<!-- benchmarks:end -->"


@dataclass
class Options:
    """What the command line asked for."""

    names: list[str]
    output: Path
    committed: bool
    quick: bool = False


class UsageError(Exception):
    """A command line that cannot run."""


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def parse(argv: list[str]) -> Options:
    names: list[str] = []
    output: Path | None = None
    committed = False
    quick = False
    args = iter(argv)
    for arg in args:
        if arg == "--update-committed":
            committed = True
        elif arg == "--quick":
            quick = True
        elif arg == "--output" or arg.startswith("--output="):
            value = arg.partition("=")[2] if "=" in arg else next(args, "")
            if not value:
                raise UsageError("--output needs a directory")
            output = Path(value)
        elif arg.startswith("-"):
            raise UsageError(f"unknown option {arg}")
        else:
            names.append(arg.removesuffix(".py").removeprefix("bench_"))
    unknown = [name for name in names if name not in available()]
    if unknown:
        raise UsageError(f"unknown benchmark(s): {' '.join(unknown)}")
    if committed and output is not None:
        raise UsageError("--update-committed writes to benchmarks/results/: drop --output")
    if committed and quick:
        raise UsageError(
            "--update-committed replaces the committed results with a full run: drop --quick"
        )
    if committed and names and sorted(set(names)) != available():
        raise UsageError(
            "--update-committed replaces the committed results, which hold every benchmark: "
            "run them all (no names)"
        )
    return Options(
        names=names or available(),
        output=COMMITTED if committed else (output or LATEST),
        committed=committed,
        quick=quick,
    )


def peers() -> dict[str, str]:
    """The pinned peer libraries and the version of each installed here ("missing" if none)."""
    from importlib import metadata

    found: dict[str, str] = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name = line.split("==")[0].strip()
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def readme_block(report: Report, *, docs: bool = False) -> str:
    """The README's benchmark section body: the headline targets and the chart.

    With ``docs=True``, the same for docs/benchmarks.md: links relative to docs/, and the
    scaling chart too (both charts copied under docs/img/benchmarks/ by ``publish_to_docs``).
    """
    machine = report.machine()
    headline = [c for c in report.checks if c.headline]
    met = sum(c.passed for c in headline)
    lines = [
        f"Measured by `make bench-commit` on {machine['date']}: Python {machine['python']}, "
        f"{machine['cpus']} CPUs, every library in one process and one run, the candidates "
        'taking turns; each figure is a median. For wrappers, "ours" and "reference" are '
        f"the cost added to a bare call. {met} of {len(headline)} headline targets met; the "
        "full tables, the spreads, the scaling charts and the other targets are in "
        + (
            "`benchmarks/results/RESULTS.md` in the repository, the method below."
            if docs
            else "[benchmarks/results/RESULTS.md](benchmarks/results/RESULTS.md), the method in "
            "[docs/benchmarks.md](docs/benchmarks.md)."
        ),
        "",
        *Report(checks=headline).headline_table(),
        "",
    ]
    if docs:
        lines += [
            "![ours / reference for each target](img/benchmarks/targets.png)",
            "",
            "![throughput and memory as threads, tasks and keys grow](img/benchmarks/scaling.png)",
        ]
    else:
        lines.append("![ours / reference for each target](benchmarks/results/targets.png)")
    return "\n".join(lines)


def publish_to_docs(report: Report, results: Path, page: Path, images: Path) -> bool:
    """Copy the charts of ``results`` under ``images`` and rewrite ``page``'s results block."""
    images.mkdir(parents=True, exist_ok=True)
    for chart in ("targets.png", "scaling.png"):
        if (results / chart).exists():
            shutil.copyfile(results / chart, images / chart)
    return update_readme(page, readme_block(report, docs=True))


def update_readme(path: Path, block: str) -> bool:
    """Replace the text between the benchmark markers of ``path``; False if it has none."""
    text = path.read_text(encoding="utf-8")
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        return False
    path.write_text(text[: start + len(START)] + "\n" + block + "\n" + text[end:], encoding="utf-8")
    return True


def load(name: str) -> ModuleType:
    return importlib.import_module(f"benchmarks.bench_{name}")


def main(argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__)
        print("available:", " ".join(available()))
        return 0
    try:
        options = parse(argv)
    except UsageError as error:
        print(error, file=sys.stderr)
        print(f"available: {' '.join(available())}", file=sys.stderr)
        return 2
    _harness.configure(options.quick)
    report = Report(mode="quick" if options.quick else "full", peers=peers())
    started = time.perf_counter()
    for name in options.names:
        print(f"{name}:", flush=True)
        module_started = time.perf_counter()
        load(name).run(report)
        report.durations[name] = time.perf_counter() - module_started
        print(f"  ({name}: {report.durations[name]:.1f} s)", flush=True)
    report.write(options.output)
    if options.committed and update_readme(README, readme_block(report)):
        print(f"the benchmark section of {README} was rewritten")
    if options.committed and publish_to_docs(report, options.output, DOCS_PAGE, DOCS_IMAGES):
        print(f"the results block of {DOCS_PAGE} and its charts were rewritten")
    failed = [c for c in report.checks if not c.passed]
    print(f"\n{len(report.checks) - len(failed)} targets met, {len(failed)} missed")
    for check in failed:
        print(f"  MISSED: {check.description} ({check.goal or check.detail})")
    print(f"{report.mode} run took {time.perf_counter() - started:.0f} s")
    print(f"results written to {options.output}")
    if not options.committed:
        print(f"the committed results in {COMMITTED} are unchanged (make bench-commit to update)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
