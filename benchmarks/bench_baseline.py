"""The floor every other number stands on: a bare function call and a bare await."""

from __future__ import annotations

from ._harness import Report, measure, measure_async


def work() -> int:
    return 1


async def awork() -> int:
    return 1


def run(report: Report) -> None:
    report.add("baseline", "bare call", measure(work), baseline=True)
    report.add("baseline", "bare await (asyncio)", measure_async(awork, backend="asyncio"))
    report.add("baseline", "bare await (trio)", measure_async(awork, backend="trio"))
