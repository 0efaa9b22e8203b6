"""Measuring per-call cost, and collecting the results of every benchmark module.

How a row is measured:

- ``compare`` / ``compare_async``: the candidates of a group take turns. Each one's loop length
  is calibrated first (one timed loop lasts about ``SETTINGS.loop_seconds``); then, round after
  round, every candidate runs one timed loop, each round starting with the next candidate, so a
  slow spell of a shared machine lands on all of them alike. A row is the **median** of its
  rounds (seconds per call), with the fastest and slowest round as its spread. These loops do
  no I/O, so they are timed on the process's CPU clock (``time.process_time``, every thread of
  the process): time the process spends descheduled while other programs run is not counted,
  the work of a library's own background threads is.
- ``compare_paired`` / ``compare_paired_async``: for calls that wait on I/O (a Redis round trip,
  an HTTP request through a mock transport), whose latency is spread wide, the candidates take
  turns call by call; a row is the median of single calls, its spread the quartiles.

``SETTINGS`` holds the sizes: ``--quick`` (``make bench-quick``) shortens loops, rounds and
sample counts for an everyday run of a minute or two; the full run (``make bench``) is the one
to commit. Ratios between rows of one run are what matter: every row of a run is measured in the
same process on the same machine.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio

__all__ = [
    "SETTINGS",
    "Check",
    "Report",
    "Row",
    "Series",
    "Settings",
    "Timing",
    "compare",
    "compare_async",
    "compare_within",
    "measure",
    "measure_async",
    "compare_paired",
    "compare_paired_async",
    "configure",
    "measure_paired",
    "subtract_baseline",
    "verdict",
]

MAX_NUMBER = 10_000_000


@dataclass
class Settings:
    """How long and how often each measurement runs."""

    quick: bool = False
    #: Each timed loop lasts about this long (seconds).
    loop_seconds: float = 0.05
    #: Timed loops per candidate in ``compare``; the row is their median.
    rounds: int = 9
    #: Multiplies every explicit loop length and sample count.
    scale: float = 1.0
    #: Fresh interpreters per module for the import time.
    import_runs: int = 15
    #: The largest number of keys for the memory-per-key measurement (a power of ten).
    max_keys_exponent: int = 6
    threads: tuple[int, ...] = (1, 2, 4, 8)
    tasks: tuple[int, ...] = (1, 10, 100, 1000)
    #: Operations per point of the thread scaling curves, and of the asyncio task curves.
    scaling_operations: int = 60_000
    task_operations: int = 10_000
    #: Runs per point of the scaling curves (the point is their median).
    scaling_repeats: int = 3

    def samples(self, n: int) -> int:
        """``n`` single calls per candidate, scaled; never fewer than 200."""
        return max(200, int(n * self.scale))

    def number(self, n: int) -> int:
        """A loop of ``n`` calls, scaled; never fewer than 100."""
        return max(100, int(n * self.scale))


FULL = Settings()
QUICK = Settings(
    quick=True,
    loop_seconds=0.012,
    rounds=5,
    scale=0.15,
    import_runs=5,
    max_keys_exponent=5,
    threads=(1, 2, 4, 8),
    tasks=(1, 10, 100, 1000),
    scaling_operations=20_000,
    task_operations=5_000,
    scaling_repeats=1,
)
#: The settings in force; ``configure`` replaces its fields.
SETTINGS = Settings()


def configure(quick: bool) -> Settings:
    """Switch ``SETTINGS`` to the quick or the full sizes, and return it."""
    chosen = QUICK if quick else FULL
    for name in chosen.__dataclass_fields__:
        setattr(SETTINGS, name, getattr(chosen, name))
    return SETTINGS


@dataclass(frozen=True)
class Timing:
    """Seconds per call: the median, and the spread around it (``low`` to ``high``)."""

    median: float
    low: float
    high: float
    samples: int

    @classmethod
    def of(cls, values: Sequence[float], *, quartiles: bool = False) -> Timing:
        """The median of ``values``, spread from the min to the max (or the quartiles)."""
        ordered = sorted(values)
        if quartiles and len(ordered) >= 4:
            q1, _, q3 = statistics.quantiles(ordered, n=4)
            low, high = q1, q3
        else:
            low, high = ordered[0], ordered[-1]
        return cls(statistics.median(ordered), low, high, len(ordered))

    @property
    def spread(self) -> float:
        """Half the spread, relative to the median (0.05 is ±5%)."""
        return (self.high - self.low) / 2 / self.median if self.median > 0 else 0.0


#: The clock of `compare` and `compare_async` loops: CPU seconds of the whole process.
LOOP_CLOCK = time.process_time


def _calibrate(run: Callable[[int], float]) -> int:
    """The loop length for which one ``run(number)`` takes about ``SETTINGS.loop_seconds``."""
    target = SETTINGS.loop_seconds
    number = 1
    while True:
        elapsed = run(number)
        if elapsed >= target / 4 or number >= MAX_NUMBER:
            return max(1, min(MAX_NUMBER, int(number * target / max(elapsed, 1e-9))))
        number *= 4


def _loop(fn: Callable[[], object]) -> Callable[[int], float]:
    def run(n: int) -> float:
        loop = range(n)
        clock = LOOP_CLOCK
        start = clock()
        for _ in loop:
            fn()
        return clock() - start

    return run


def _rotations(names: list[str]) -> list[list[str]]:
    return [names[i:] + names[:i] for i in range(len(names))] or [[]]


def compare(
    candidates: Mapping[str, Callable[[], object]],
    *,
    number: int | None = None,
    rounds: int | None = None,
) -> dict[str, Timing]:
    """Seconds per call of each candidate (sync), the candidates taking turns loop by loop.

    Without ``number`` each candidate's loop is calibrated to about ``SETTINGS.loop_seconds``;
    calibrating warms up too. With it, a short warm-up loop runs first.
    """
    runs = {name: _loop(fn) for name, fn in candidates.items()}
    numbers: dict[str, int] = {}
    for name, run in runs.items():
        if number is None:
            numbers[name] = _calibrate(run)
        else:
            numbers[name] = SETTINGS.number(number)
            run(max(1, numbers[name] // 10))
    timings: dict[str, list[float]] = {name: [] for name in runs}
    orders = _rotations(list(runs))
    for i in range(rounds or SETTINGS.rounds):
        for name in orders[i % len(orders)]:
            timings[name].append(runs[name](numbers[name]) / numbers[name])
    return {name: Timing.of(values) for name, values in timings.items()}


def compare_within(
    candidates: Mapping[
        str, tuple[Callable[[], object], Callable[[], contextlib.AbstractContextManager[object]]]
    ],
    *,
    rounds: int | None = None,
) -> dict[str, Timing]:
    """`compare` for candidates that each need the process in a state of their own.

    Each candidate is ``(fn, setting)``: ``setting()`` makes a context manager that is entered
    before each of the candidate's timed loops and left after it (subscribing an exporter, for
    instance), outside the timing. The candidates still take turns loop by loop, so a slow
    spell of the machine lands on all of them alike.
    """
    runs = {name: (_loop(fn), setting) for name, (fn, setting) in candidates.items()}
    numbers: dict[str, int] = {}
    for name, (run, setting) in runs.items():
        with setting():
            numbers[name] = _calibrate(run)
    timings: dict[str, list[float]] = {name: [] for name in runs}
    orders = _rotations(list(runs))
    for i in range(rounds or SETTINGS.rounds):
        for name in orders[i % len(orders)]:
            run, setting = runs[name]
            with setting():
                run(max(1, numbers[name] // 20))  # warm up in this setting
                timings[name].append(run(numbers[name]) / numbers[name])
    return {name: Timing.of(values) for name, values in timings.items()}


def compare_async(
    candidates: Mapping[str, Callable[[], Awaitable[object]]],
    backend: str = "asyncio",
    *,
    number: int | None = None,
    rounds: int | None = None,
) -> dict[str, Timing]:
    """`compare` for coroutine functions: all of it inside one event loop on ``backend``.

    Each candidate makes a new awaitable per call (an ``async def`` function or a lambda around
    one). Calibration, warm-up and the timed rounds share the one ``anyio.run``, so the cost of
    starting an event loop is not measured and loop-bound objects (an ``asyncio.Semaphore``)
    stay on their loop.
    """
    names = list(candidates)
    timings: dict[str, list[float]] = {name: [] for name in names}

    async def timed(fn: Callable[[], Awaitable[object]], n: int) -> float:
        loop = range(n)
        clock = LOOP_CLOCK
        start = clock()
        for _ in loop:
            await fn()
        return clock() - start

    async def calibrate(fn: Callable[[], Awaitable[object]]) -> int:
        target = SETTINGS.loop_seconds
        n = 1
        while True:
            elapsed = await timed(fn, n)
            if elapsed >= target / 4 or n >= MAX_NUMBER:
                return max(1, min(MAX_NUMBER, int(n * target / max(elapsed, 1e-9))))
            n *= 4

    async def main() -> None:
        numbers: dict[str, int] = {}
        for name in names:
            if number is None:
                numbers[name] = await calibrate(candidates[name])
            else:
                numbers[name] = SETTINGS.number(number)
                await timed(candidates[name], max(1, numbers[name] // 10))
        orders = _rotations(names)
        for i in range(rounds or SETTINGS.rounds):
            for name in orders[i % len(orders)]:
                seconds = await timed(candidates[name], numbers[name])
                timings[name].append(seconds / numbers[name])

    anyio.run(main, backend=backend)
    return {name: Timing.of(values) for name, values in timings.items()}


#: Rounds of `measure` and `measure_async` when given a loop length but no ``repeat``: such
#: loops are long already.
LONG_LOOP_ROUNDS = 5


def _legacy_rounds(number: int | None, repeat: int) -> int | None:
    if repeat:
        return repeat
    return min(LONG_LOOP_ROUNDS, SETTINGS.rounds) if number is not None else None


def measure(fn: Callable[[], object], *, number: int | None = None, repeat: int = 0) -> float:
    """Seconds per call of ``fn()`` alone: the median of `compare` with one candidate."""
    return compare({"fn": fn}, number=number, rounds=_legacy_rounds(number, repeat))["fn"].median


def measure_async(
    fn: Callable[[], Awaitable[object]],
    backend: str = "asyncio",
    *,
    number: int | None = None,
    repeat: int = 0,
) -> float:
    """Seconds per ``await fn()`` on ``backend`` alone: the median of `compare_async`."""
    rounds = _legacy_rounds(number, repeat)
    return compare_async({"fn": fn}, backend, number=number, rounds=rounds)["fn"].median


def measure_paired(
    candidates: Mapping[str, Callable[[], object]], samples: int = 10_000
) -> dict[str, float]:
    """The medians of `compare_paired`, in seconds per call."""
    return {name: t.median for name, t in compare_paired(candidates, samples).items()}


def compare_paired(
    candidates: Mapping[str, Callable[[], object]], samples: int = 10_000
) -> dict[str, Timing]:
    """Seconds per call of each candidate: the median of single calls, taken in turns.

    For calls that wait on I/O (a Redis round trip), whose latency is spread wide and drifts
    with whatever else the machine does. The candidates take turns call by call, starting with
    a different one each time; the median ignores the tail of rare stalls that decides the mean
    of a short loop. ``samples`` is scaled by ``SETTINGS``.
    """
    names = list(candidates)
    for fn in candidates.values():  # warm up: connections, script cache
        for _ in range(200):
            fn()
    orders = [[(name, candidates[name]) for name in order] for order in _rotations(names)]
    timings: dict[str, list[int]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    for i in range(SETTINGS.samples(samples)):
        for name, fn in orders[i % len(orders)]:
            start = clock()
            fn()
            timings[name].append(clock() - start)
    return {
        name: Timing.of([v / 1e9 for v in values], quartiles=True)
        for name, values in timings.items()
    }


def compare_paired_async(
    candidates: Mapping[str, Callable[[], Awaitable[object]]],
    backend: str = "asyncio",
    samples: int = 10_000,
) -> dict[str, Timing]:
    """`compare_paired` for coroutines: turns taken call by call in one event loop."""
    names = list(candidates)
    orders = _rotations(names)
    timings: dict[str, list[int]] = {name: [] for name in names}
    clock = time.perf_counter_ns

    async def main() -> None:
        for fn in candidates.values():
            for _ in range(200):
                await fn()
        for i in range(SETTINGS.samples(samples)):
            for name in orders[i % len(orders)]:
                fn = candidates[name]
                start = clock()
                await fn()
                timings[name].append(clock() - start)

    anyio.run(main, backend=backend)
    return {
        name: Timing.of([v / 1e9 for v in values], quartiles=True)
        for name, values in timings.items()
    }


def subtract_baseline(seconds: float | Timing, baseline: float | Timing) -> float:
    """The cost a wrapper adds: ``seconds`` per call less the ``baseline`` of the bare call.

    Never negative: when the difference is lost in the noise, it is 0.
    """
    return max(0.0, _seconds(seconds) - _seconds(baseline))


def _seconds(value: float | Timing) -> float:
    return value.median if isinstance(value, Timing) else float(value)


def verdict(ours: float, theirs: float, at_most: float, *, strict: bool = False) -> bool:
    """Whether ``ours`` is within ``at_most`` times ``theirs`` (``<`` when ``strict``).

    A reference of 0 or less (a peer's overhead lost in the noise) is met only by an ``ours``
    of 0 or less too; a NaN anywhere is a miss.
    """
    if math.isnan(ours) or math.isnan(theirs) or math.isnan(at_most):
        return False
    if theirs <= 0:
        return ours <= 0 and not strict
    limit = at_most * theirs
    return ours < limit if strict else ours <= limit


@dataclass
class Row:
    """One measurement: ``seconds`` per call (the median) of ``name`` in ``group``."""

    group: str
    name: str
    seconds: float
    reference: bool = False
    note: str = ""
    low: float | None = None
    high: float | None = None


@dataclass
class Check:
    """A target, and whether this run met it.

    Ratio targets carry ``ours``, ``theirs`` (seconds) and ``ratio``; ``goal`` says the target
    in words (``<= 0.05x tenacity``). ``headline`` marks the targets of the summary table.
    """

    description: str
    passed: bool
    detail: str = ""
    goal: str = ""
    ours: float | None = None
    theirs: float | None = None
    ratio: float | None = None
    headline: bool = False
    at_most: float | None = None

    @property
    def verdict(self) -> str:
        return "met" if self.passed else "MISSED"


@dataclass
class Series:
    """One curve of a scaling chart: ``ys`` (in ``unit``) at ``xs``."""

    figure: str
    name: str
    xs: list[float]
    ys: list[float]
    xlabel: str
    unit: str


def _fmt(seconds: float | None) -> str:
    """A duration for a table: ns under 10 µs, µs under 10 ms, else ms."""
    if seconds is None:
        return ""
    if seconds < 10e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 10e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.1f} ms"


@dataclass
class Report:
    """What the benchmark modules measured, written out as Markdown, JSON and charts."""

    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    mode: str = "full"
    notes: list[str] = field(default_factory=list)
    peers: dict[str, str] = field(default_factory=dict)
    #: Seconds each benchmark module took, in the order they ran.
    durations: dict[str, float] = field(default_factory=dict)

    def add(
        self,
        group: str,
        name: str,
        seconds: float | Timing,
        *,
        baseline: bool = False,
        reference: bool = False,
        note: str = "",
    ) -> float:
        """Record ``seconds`` per call of ``name`` in ``group``; return the median in seconds.

        ``seconds`` is a `Timing` (its spread is kept) or a plain number of seconds.
        ``baseline=True`` (or its alias ``reference=True``) marks the row that the group's
        ratios are relative to; without one, the group's first row is the reference.
        """
        low = high = None
        if isinstance(seconds, Timing):
            low, high = seconds.low, seconds.high
            spread = f" ±{seconds.spread:5.1%}"
        else:
            spread = ""
        value = _seconds(seconds)
        self.rows.append(Row(group, name, value, baseline or reference, note, low, high))
        print(f"  {group[:40]:<40} {name[:52]:<52} {value * 1e9:10.1f} ns{spread}", flush=True)
        return value

    def check(self, description: str, passed: bool, detail: str = "") -> bool:
        """Record whether a target (stated in ``description``) was met in this run."""
        self.checks.append(Check(description, bool(passed), detail))
        print(f"  [{'met' if passed else 'MISSED'}] {description} {detail}", flush=True)
        return passed

    def target(
        self,
        description: str,
        ours: float | Timing,
        theirs: float | Timing,
        *,
        at_most: float,
        peer: str,
        strict: bool = False,
        headline: bool = True,
        detail: str = "",
    ) -> bool:
        """Record a ratio target: ``ours <= at_most * theirs`` (``<`` when ``strict``)."""
        mine, other = _seconds(ours), _seconds(theirs)
        passed = verdict(mine, other, at_most, strict=strict)
        if mine == 0 and other > 0:
            detail = ("ours is lost in the noise of this run; " + detail).strip("; ")
        ratio = mine / other if other > 0 else None
        sign = "<" if strict else "<="
        goal = f"{sign} {at_most:.3g}x {peer}" if at_most != 1 or strict else f"<= {peer}"
        if strict and at_most == 1:
            goal = f"< {peer}"
        self.checks.append(
            Check(description, passed, detail, goal, mine, other, ratio, headline, at_most)
        )
        shown = f"{ratio:.2f}x" if ratio is not None else "n/a"
        print(
            f"  [{'met' if passed else 'MISSED'}] {description}: {shown} "
            f"({_fmt(mine)} vs {_fmt(other)}), target {goal} {detail}",
            flush=True,
        )
        return passed

    def limit(
        self,
        description: str,
        value: float | Timing,
        *,
        at_most: float,
        headline: bool = True,
        detail: str = "",
    ) -> bool:
        """Record an absolute target: ``value <= at_most`` seconds."""
        mine = _seconds(value)
        passed = not math.isnan(mine) and mine <= at_most
        goal = f"<= {_fmt(at_most)}"
        self.checks.append(Check(description, passed, detail, goal, mine, headline=headline))
        print(
            f"  [{'met' if passed else 'MISSED'}] {description}: {_fmt(mine)}, target {goal} "
            f"{detail}",
            flush=True,
        )
        return passed

    def curve(
        self,
        figure: str,
        name: str,
        xs: Sequence[float],
        ys: Sequence[float],
        *,
        xlabel: str,
        unit: str,
    ) -> None:
        """Record one curve of a scaling chart."""
        self.series.append(Series(figure, name, list(xs), list(ys), xlabel, unit))
        points = ", ".join(f"{x:g}: {y:,.0f}" for x, y in zip(xs, ys, strict=True))
        print(f"  {figure}: {name}: {points} ({unit})", flush=True)

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
            "mode": self.mode,
        }

    def write(self, directory: Path) -> list[Path]:
        """Write RESULTS.md, results.json and the charts to ``directory``; return the paths."""
        directory.mkdir(parents=True, exist_ok=True)
        written = [directory / "results.json", directory / "RESULTS.md"]
        (directory / "results.json").write_text(self.json() + "\n")
        (directory / "RESULTS.md").write_text(self.markdown())
        written += self.charts(directory)
        return written

    def json(self) -> str:
        return json.dumps(
            {
                "machine": self.machine(),
                "peers": self.peers,
                "rows": [asdict(r) for r in self.rows],
                "checks": [{**asdict(c), "verdict": c.verdict} for c in self.checks],
                "series": [asdict(s) for s in self.series],
                "notes": self.notes,
                "durations": self.durations,
            },
            indent=2,
        )

    def headline_table(self) -> list[str]:
        """The targets as a Markdown table: ours, the reference, the ratio, the goal, met."""
        lines = [
            "| target | ours | reference | ratio | goal | verdict |",
            "|---|---:|---:|---:|---|---|",
        ]
        for c in sorted(self.checks, key=lambda c: not c.headline):
            ratio = f"{c.ratio:.2f}x" if c.ratio is not None else ""
            verdict_text = "met" if c.passed else "**MISSED**"
            # a plain check states its goal in its description and its measure in its detail
            ours = _fmt(c.ours) if c.goal else c.detail
            goal = f"{c.goal} ({c.detail})" if c.goal and c.detail else c.goal
            lines.append(
                f"| {c.description} | {ours} | {_fmt(c.theirs)} | {ratio} | {goal} "
                f"| {verdict_text} |"
            )
        return lines

    def markdown(self) -> str:
        machine = self.machine()
        met = sum(c.passed for c in self.checks)
        lines = [
            "# Benchmark results",
            "",
            f"Python {machine['python']} ({machine['implementation']}) on {machine['platform']}, "
            f"{machine['cpus']} CPUs, {machine['date']}, **{machine['mode']} run**. Every row "
            "was measured in the same process, in one run, the candidates of a group taking "
            "turns; a row is the median of its rounds (timed loops) or of its single calls "
            "(I/O rows), and its spread is the fastest to the slowest round (quartiles for "
            "single calls). Ratio: this row / the group's reference row (in bold).",
            "",
        ]
        if self.peers:
            lines.append(
                "Peers: " + ", ".join(f"{name} {ver}" for name, ver in self.peers.items()) + "."
            )
            lines.append("")
        if self.checks:
            lines += [
                "## Targets",
                "",
                f"{met} of {len(self.checks)} targets met in this run. Ours and reference are "
                "medians in the same run; for wrappers they are the cost added to a bare call "
                "(see docs/benchmarks.md).",
                "",
                *self.headline_table(),
                "",
                "![targets](targets.png)",
                "",
            ]
        for note in self.notes:
            lines += [note, ""]
        if self.durations:
            total = sum(self.durations.values())
            spent = ", ".join(f"{name} {sec:.0f} s" for name, sec in self.durations.items())
            lines += [f"The run took {total:.0f} s: {spent}.", ""]
        for group, rows in self.groups().items():
            reference = next((r for r in rows if r.reference), rows[0])
            lines += [
                f"## {group}",
                "",
                "| name | per call | spread | ratio | note |",
                "|---|---:|---:|---:|---|",
            ]
            for row in rows:
                ratio = row.seconds / reference.seconds if reference.seconds else float("nan")
                name = f"**{row.name}**" if row is reference else row.name
                spread = (
                    f"{_fmt(row.low)} to {_fmt(row.high)}"
                    if row.low is not None and row.high is not None
                    else ""
                )
                lines.append(
                    f"| {name} | {_fmt(row.seconds)} | {spread} | {ratio:.2f} | {row.note} |"
                )
            lines.append("")
        figures: dict[str, list[Series]] = {}
        for s in self.series:
            figures.setdefault(s.figure, []).append(s)
        if figures:
            lines += ["## Scaling", "", "![scaling](scaling.png)", ""]
        for figure, curves in figures.items():
            xs = sorted({x for s in curves for x in s.xs})
            lines += [
                f"### {figure} ({curves[0].unit})",
                "",
                f"| {curves[0].xlabel} | " + " | ".join(s.name for s in curves) + " |",
                "|---:|" + "---:|" * len(curves),
            ]
            for x in xs:
                cells = []
                for s in curves:
                    value = dict(zip(s.xs, s.ys, strict=True)).get(x)
                    cells.append("" if value is None else f"{value:,.0f}")
                lines.append(f"| {x:,.0f} | " + " | ".join(cells) + " |")
            lines.append("")
        return "\n".join(lines)

    def charts(self, directory: Path) -> list[Path]:
        """Write results.png (every group), targets.png and scaling.png; return the paths."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib is not installed: no charts written", file=sys.stderr)
            return []
        written = []
        footer = self._footer()
        if self.rows:
            written.append(self._groups_chart(plt, directory / "results.png", footer))
        if any(c.ratio is not None for c in self.checks):
            written.append(self._targets_chart(plt, directory / "targets.png", footer))
        if self.series:
            written.append(self._scaling_chart(plt, directory / "scaling.png", footer))
        return written

    def _footer(self) -> str:
        m = self.machine()
        return (
            f"Python {m['python']} ({m['implementation']}), {m['platform']}, {m['cpus']} CPUs, "
            f"{m['date']}, {m['mode']} run"
        )

    def _groups_chart(self, plt: Any, path: Path, footer: str) -> Path:
        groups = self.groups()
        heights = [max(1.2, 0.4 * len(rows) + 0.8) for rows in groups.values()]
        fig, axes = plt.subplots(len(groups), 1, figsize=(10, sum(heights) + 0.3), squeeze=False)
        for ax, (group, rows) in zip(axes[:, 0], groups.items(), strict=True):
            names = [r.name for r in rows]
            values = [r.seconds * 1e9 for r in rows]
            errors = [
                [r.seconds * 1e9 - (r.low if r.low is not None else r.seconds) * 1e9 for r in rows],
                [
                    (r.high if r.high is not None else r.seconds) * 1e9 - r.seconds * 1e9
                    for r in rows
                ],
            ]
            colors = ["#2a7ab9" if "resilient" in r.name else "#9a9a9a" for r in rows]
            ax.barh(names, values, xerr=errors, color=colors, error_kw={"elinewidth": 0.8})
            ax.invert_yaxis()
            ax.set_title(group, fontsize=10, loc="left")
            ax.set_xlabel("ns per call, median (lower is better)", fontsize=8)
            ax.tick_params(labelsize=8)
        fig.text(0.01, 0.002, footer, fontsize=7, color="#555555")
        fig.tight_layout(rect=(0, 0.01, 1, 1))
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return path

    def _targets_chart(self, plt: Any, path: Path, footer: str) -> Path:
        checks = [c for c in self.checks if c.ratio is not None and c.headline]
        checks = checks or [c for c in self.checks if c.ratio is not None]
        fig, ax = plt.subplots(figsize=(10, 0.42 * len(checks) + 1.4))
        names = [c.description for c in checks]
        ratios = [max(c.ratio or 0.0, 1e-3) for c in checks]
        goals = [c.at_most for c in checks]
        colors = ["#2a7ab9" if c.passed else "#d1495b" for c in checks]
        ax.barh(names, ratios, color=colors)
        for i, goal in enumerate(goals):
            if goal:
                ax.plot([goal, goal], [i - 0.4, i + 0.4], color="black", linewidth=1.5)
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_xlabel(
            "ours / reference, same run (log scale; black tick: the target; blue met, red missed)",
            fontsize=8,
        )
        ax.tick_params(labelsize=8)
        fig.text(0.01, 0.005, footer, fontsize=7, color="#555555")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def _scaling_chart(self, plt: Any, path: Path, footer: str) -> Path:
        figures: dict[str, list[Series]] = {}
        for s in self.series:
            figures.setdefault(s.figure, []).append(s)
        columns = min(3, len(figures))
        rows = -(-len(figures) // columns)
        fig, axes = plt.subplots(
            rows, columns, figsize=(5.4 * columns, 4.2 * rows + 0.3), squeeze=False
        )
        for ax in axes.flat[len(figures) :]:
            ax.set_visible(False)
        for ax, (figure, curves) in zip(axes.flat, figures.items(), strict=False):
            for s in curves:
                style = "-o" if "resilient" in s.name else "--s"
                ax.plot(s.xs, s.ys, style, label=s.name, markersize=4)
            xs = sorted({x for s in curves for x in s.xs})
            ax.set_xscale("log", base=2 if max(xs) <= 64 else 10)
            ax.set_xticks(xs)
            ax.set_xticklabels([f"{x:,.0f}" for x in xs])
            ax.minorticks_off()
            if curves[0].unit.startswith("bytes"):
                ax.set_ylim(bottom=0, top=1.15 * max(y for s in curves for y in s.ys))
            else:
                ax.set_yscale("log")
            ax.set_title(figure, fontsize=10)
            ax.set_xlabel(curves[0].xlabel, fontsize=8)
            ax.set_ylabel(curves[0].unit, fontsize=8)
            ax.tick_params(labelsize=8)
            ax.legend(fontsize=7)
            ax.grid(True, which="both", alpha=0.3)
        fig.text(0.01, 0.005, footer, fontsize=7, color="#555555")
        fig.tight_layout(rect=(0, 0.02, 1, 1))
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path
