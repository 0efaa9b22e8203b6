"""Run the benchmarks: ``python -m benchmarks [options] [name ...]`` (``retry``, ``baseline``...).

Every ``benchmarks/bench_*.py`` module has ``run(report)``; with no names, all of them run, in
alphabetical order. Missed targets are reported, not turned into a failing exit status: timings
depend on the machine.

Where the results go (RESULTS.md, results.json and results.png):

- by default, ``benchmarks/results/latest/`` (ignored by git), replaced by each run; the
  committed results in ``benchmarks/results/`` are left alone;
- ``--output DIR``: to DIR instead;
- ``--update-committed``: to ``benchmarks/results/``, the files under version control. Only a
  run of every benchmark may replace them (``make bench-commit``).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ._harness import Report

HERE = Path(__file__).parent
#: The results under version control: replaced only on request (``--update-committed``).
COMMITTED = HERE / "results"
#: Where a run writes by default: a scratch copy that git ignores.
LATEST = COMMITTED / "latest"


@dataclass
class Options:
    """What the command line asked for."""

    names: list[str]
    output: Path
    committed: bool


class UsageError(Exception):
    """A command line that cannot run."""


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def parse(argv: list[str]) -> Options:
    names: list[str] = []
    output: Path | None = None
    committed = False
    args = iter(argv)
    for arg in args:
        if arg == "--update-committed":
            committed = True
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
    if committed and names and sorted(set(names)) != available():
        raise UsageError(
            "--update-committed replaces the committed results, which hold every benchmark: "
            "run them all (no names)"
        )
    return Options(
        names=names or available(),
        output=COMMITTED if committed else (output or LATEST),
        committed=committed,
    )


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
    report = Report()
    for name in options.names:
        print(f"{name}:", flush=True)
        load(name).run(report)
    report.write(options.output)
    failed = [c for c in report.checks if not c.passed]
    print(f"\n{len(report.checks) - len(failed)} targets met, {len(failed)} missed")
    print(f"results written to {options.output}")
    if not options.committed:
        print(f"the committed results in {COMMITTED} are unchanged (make bench-commit to update)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
