"""Measuring per-call cost, and collecting the results of every benchmark module.

Numbers are the minimum over several repeats of a timed loop (the least disturbed run), in
seconds per call; calls that wait on I/O are measured one by one instead, taking turns, and
reported as medians (`measure_paired`). Ratios between rows of one group are what matter:
every row of a run is measured in the same process on the same machine.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio

__all__ = [
    "Check",
    "Report",
    "Row",
    "measure",
    "measure_async",
    "measure_paired",
    "subtract_baseline",
]

TARGET_SECONDS = 0.1  # each timed loop runs about this long
MAX_NUMBER = 10_000_000


def _calibrate(run: Callable[[int], float]) -> int:
    """The loop length for which one ``run(number)`` takes about ``TARGET_SECONDS``."""
    number = 1
    while True:
        elapsed = run(number)
        if elapsed >= TARGET_SECONDS / 4 or number >= MAX_NUMBER:
            return max(1, min(MAX_NUMBER, int(number * TARGET_SECONDS / max(elapsed, 1e-9))))
        number *= 4


def measure(fn: Callable[[], object], *, number: int | None = None, repeat: int = 7) -> float:
    """Seconds per call of ``fn()``: the minimum over ``repeat`` timed loops of ``number`` calls.

    A warm-up loop runs first; without ``number``, the loop length is calibrated so that one
    timed loop takes about 0.1 s.
    """

    def run(n: int) -> float:
        loop = range(n)
        start = time.perf_counter()
        for _ in loop:
            fn()
        return time.perf_counter() - start

    if number is None:
        number = _calibrate(run)  # calibrating warms up too
    else:
        run(max(1, number // 10))
    return min(run(number) for _ in range(repeat)) / number


def measure_paired(
    candidates: dict[str, Callable[[], object]], samples: int = 10_000
) -> dict[str, float]:
    """Seconds per call of each candidate: the median of ``samples`` single calls each.

    For calls that wait on I/O (a Redis round trip), whose latency is spread wide and drifts
    with whatever else the machine does. The candidates take turns call by call, starting with
    a different one each time, so a slow spell of the machine lands on all of them alike; the
    median ignores the tail of rare stalls that decides the mean of a short loop.
    """
    names = list(candidates)
    for fn in candidates.values():  # warm up: connections, script cache
        for _ in range(200):
            fn()
    orders = [
        [(name, candidates[name]) for name in names[i:] + names[:i]] for i in range(len(names))
    ]
    timings: dict[str, list[int]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    for i in range(samples):
        for name, fn in orders[i % len(orders)]:
            start = clock()
            fn()
            timings[name].append(clock() - start)
    return {name: statistics.median(values) / 1e9 for name, values in timings.items()}


def measure_async(
    fn: Callable[[], Awaitable[object]],
    backend: str = "asyncio",
    *,
    number: int | None = None,
    repeat: int = 7,
) -> float:
    """Seconds per ``await fn()`` on ``backend`` ("asyncio" or "trio").

    ``fn`` makes a new awaitable each call (an ``async def`` function or a lambda around one).
    The warm-up and all the timed loops run inside one ``anyio.run``, so the cost of starting
    an event loop is not measured; only calibration, when ``number`` is not given, runs loops
    of its own first.
    """

    async def timed(n: int) -> float:
        loop = range(n)
        start = time.perf_counter()
        for _ in loop:
            await fn()
        return time.perf_counter() - start

    if number is None:
        number = _calibrate(lambda n: anyio.run(timed, n, backend=backend))
    loops = number

    async def warm_up_and_time() -> float:
        await timed(max(1, loops // 10))
        return min([await timed(loops) for _ in range(repeat)])

    return anyio.run(warm_up_and_time, backend=backend) / number


def subtract_baseline(seconds: float, baseline: float) -> float:
    """The cost a wrapper adds: ``seconds`` per call less the ``baseline`` of the bare call.

    Never negative: when the difference is lost in the noise, it is 0.
    """
    return max(0.0, seconds - baseline)


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
        self,
        group: str,
        name: str,
        seconds: float,
        *,
        baseline: bool = False,
        reference: bool = False,
        note: str = "",
    ) -> float:
        """Record ``seconds`` per call of ``name`` in ``group``, and return ``seconds``.

        ``baseline=True`` (or its alias ``reference=True``) marks the row that the group's
        ratios are relative to; without one, the group's first row is the reference.
        """
        self.rows.append(Row(group, name, seconds, baseline or reference, note))
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
            f"{machine['cpus']} CPUs, {machine['date']}. Each row is the minimum over several "
            "timed loops; every row was measured in the same process, in one run. Ratio: this "
            "row / the group's reference row (in bold).",
            "",
        ]
        for group, rows in self.groups().items():
            reference = next((r for r in rows if r.reference), rows[0])
            lines += [f"## {group}", "", "| name | ns/call | ratio | note |", "|---|---:|---:|---|"]
            for row in rows:
                ratio = row.seconds / reference.seconds if reference.seconds else float("nan")
                name = f"**{row.name}**" if row is reference else row.name
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
        fig, axes = plt.subplots(len(groups), 1, figsize=(9, sum(heights) + 0.3), squeeze=False)
        for ax, (group, rows) in zip(axes[:, 0], groups.items(), strict=True):
            names = [r.name for r in rows]
            values = [r.seconds * 1e9 for r in rows]
            colors = ["#2a7ab9" if r.name.startswith("resilient") else "#9a9a9a" for r in rows]
            ax.barh(names, values, color=colors)
            ax.invert_yaxis()
            ax.set_title(group, fontsize=10, loc="left")
            ax.set_xlabel("ns per call (lower is better)", fontsize=8)
            ax.tick_params(labelsize=8)
        machine = self.machine()
        fig.text(
            0.01,
            0.005,
            f"Python {machine['python']} ({machine['implementation']}), {machine['platform']}, "
            f"{machine['cpus']} CPUs, {machine['date']}",
            fontsize=7,
            color="#555555",
        )
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        fig.savefig(path, dpi=110)
        plt.close(fig)
