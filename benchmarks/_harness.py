"""Measuring per-call cost, and collecting the results of every benchmark module.

Numbers are the minimum over several repeats of a timed loop (the least disturbed run), in
seconds per call. Ratios between rows of one group are what matter: every row of a run is
measured in the same process on the same machine, one after the other.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio

__all__ = ["Check", "Report", "Row", "measure", "measure_async"]

TARGET_SECONDS = 0.1  # each repeat runs about this long


def _calibrate(run: Callable[[int], float]) -> int:
    number = 1
    while True:
        elapsed = run(number)
        if elapsed >= TARGET_SECONDS / 4 or number >= 10_000_000:
            return max(1, int(number * TARGET_SECONDS / max(elapsed, 1e-9)))
        number *= 4


def measure(fn: Callable[[], object], *, number: int | None = None, repeat: int = 7) -> float:
    """Seconds per call of ``fn()``: the minimum over ``repeat`` timed loops."""

    def run(n: int) -> float:
        loop = range(n)
        start = time.perf_counter()
        for _ in loop:
            fn()
        return time.perf_counter() - start

    number = number or _calibrate(run)
    return min(run(number) for _ in range(repeat)) / number


def measure_async(
    fn: Callable[[], Awaitable[object]],
    *,
    backend: str = "asyncio",
    number: int | None = None,
    repeat: int = 7,
) -> float:
    """Seconds per ``await fn()``, looping inside one event loop run on ``backend``."""

    async def timed(n: int) -> float:
        loop = range(n)
        start = time.perf_counter()
        for _ in loop:
            await fn()
        return time.perf_counter() - start

    def run(n: int) -> float:
        return anyio.run(timed, n, backend=backend)

    number = number or _calibrate(run)

    async def all_repeats() -> float:
        return min([await timed(number) for _ in range(repeat)])

    return anyio.run(all_repeats, backend=backend) / number


@dataclass
class Row:
    """One measurement: ``seconds`` per call of ``name`` in ``group``."""

    group: str
    name: str
    seconds: float
    reference: bool = False
    note: str = ""


@dataclass
class Check:
    """A target from the project's goals, and whether this run met it."""

    description: str
    passed: bool
    detail: str = ""


@dataclass
class Report:
    """What the benchmark modules measured, written out as Markdown, JSON and a chart."""

    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def add(
        self, group: str, name: str, seconds: float, *, reference: bool = False, note: str = ""
    ) -> float:
        """Record a row; ``reference`` marks the row the group's ratios are relative to."""
        self.rows.append(Row(group, name, seconds, reference, note))
        print(f"  {group:<34} {name:<44} {seconds * 1e9:10.1f} ns", flush=True)
        return seconds

    def check(self, description: str, passed: bool, detail: str = "") -> bool:
        """Record whether a target was met in this run."""
        self.checks.append(Check(description, bool(passed), detail))
        print(f"  [{'PASS' if passed else 'FAIL'}] {description} {detail}", flush=True)
        return passed

    def groups(self) -> dict[str, list[Row]]:
        groups: dict[str, list[Row]] = {}
        for row in self.rows:
            groups.setdefault(row.group, []).append(row)
        return groups

    def machine(self) -> dict[str, Any]:
        return {
            "python": sys.version.split()[0],
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d"),
        }

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "results.json").write_text(
            json.dumps(
                {
                    "machine": self.machine(),
                    "rows": [asdict(r) for r in self.rows],
                    "checks": [asdict(c) for c in self.checks],
                },
                indent=2,
            )
            + "\n"
        )
        (directory / "RESULTS.md").write_text(self.markdown())
        self.chart(directory / "results.png")

    def markdown(self) -> str:
        machine = self.machine()
        lines = [
            "# Benchmark results",
            "",
            f"Python {machine['python']} ({machine['implementation']}) on {machine['platform']}, "
            f"{machine['cpus']} CPUs, {machine['date']}. Minimum of 7 timed loops per row; every "
            "row measured in the same process, in one run. Ratio: this row / the group's "
            "reference row.",
            "",
        ]
        for group, rows in self.groups().items():
            reference = next((r for r in rows if r.reference), rows[0])
            lines += [f"## {group}", "", "| | ns/call | ratio | note |", "|---|---:|---:|---|"]
            for row in rows:
                ratio = row.seconds / reference.seconds if reference.seconds else float("nan")
                name = f"**{row.name}**" if row.reference else row.name
                lines.append(f"| {name} | {row.seconds * 1e9:.1f} | {ratio:.2f} | {row.note} |")
            lines.append("")
        if self.checks:
            lines += ["## Targets", "", "| target | result | detail |", "|---|---|---|"]
            for c in self.checks:
                lines.append(f"| {c.description} | {'PASS' if c.passed else 'FAIL'} | {c.detail} |")
            lines.append("")
        return "\n".join(lines)

    def chart(self, path: Path) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib is not installed: no chart written", file=sys.stderr)
            return
        groups = self.groups()
        if not groups:
            return
        heights = [max(1.2, 0.45 * len(rows) + 0.8) for rows in groups.values()]
        fig, axes = plt.subplots(len(groups), 1, figsize=(9, sum(heights)), squeeze=False)
        for ax, (group, rows) in zip(axes[:, 0], groups.items(), strict=True):
            names = [r.name for r in rows]
            values = [r.seconds * 1e9 for r in rows]
            colors = ["#2a7ab9" if r.name.startswith("resilient") else "#9a9a9a" for r in rows]
            ax.barh(names, values, color=colors)
            ax.invert_yaxis()
            ax.set_title(group, fontsize=10, loc="left")
            ax.set_xlabel("ns per call (lower is better)", fontsize=8)
            ax.tick_params(labelsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
