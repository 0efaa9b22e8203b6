"""Run the benchmarks: ``python -m benchmarks [name ...]`` (names like ``retry`` or ``baseline``).

Every ``benchmarks/bench_*.py`` module has ``run(report)``; with no names, all of them run, in
alphabetical order. Results go to ``benchmarks/results/`` as RESULTS.md, results.json and
results.png, replacing the previous ones. Missed targets are reported, not turned into a
failing exit status: timings depend on the machine.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from ._harness import Report

HERE = Path(__file__).parent


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def main(argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__)
        print("available:", " ".join(available()))
        return 0
    names = [arg.removesuffix(".py").removeprefix("bench_") for arg in argv] or available()
    unknown = [name for name in names if name not in available()]
    if unknown:
        print(f"unknown benchmark(s): {' '.join(unknown)}", file=sys.stderr)
        print(f"available: {' '.join(available())}", file=sys.stderr)
        return 2
    report = Report()
    for name in names:
        print(f"{name}:", flush=True)
        module = importlib.import_module(f"benchmarks.bench_{name}")
        module.run(report)
    report.write(HERE / "results")
    failed = [c for c in report.checks if not c.passed]
    print(f"\n{len(report.checks) - len(failed)} targets met, {len(failed)} missed")
    print(f"results written to {HERE / 'results'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
