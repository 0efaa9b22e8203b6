"""Run the benchmarks: ``python -m benchmarks [name ...]`` (names like ``retry`` or ``baseline``).

Every ``benchmarks/bench_*.py`` module has ``run(report)``. Results go to
``benchmarks/results/`` as RESULTS.md, results.json and results.png.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from ._harness import Report

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
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
