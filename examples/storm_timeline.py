"""The storm demo's timeline: a PNG with the naive run on the left, the protected one on the right.

Four rows of plots, over the seconds since the run began, with the phases shaded: requests per
second (the clients' calls and what reached the upstream), failed calls per second, the gateway's
circuit breaker state, and each call's latency. Needs matplotlib (the ``demo`` extra).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display needed

import matplotlib.pyplot as plt

BIN = 0.25  # seconds per bar of the rate plots
STATES = {"closed": 0, "half_open": 1, "open": 2}
SHADES = {
    "healthy": "#e8f5e9",
    "slow": "#fff8e1",
    "failing": "#ffebee",
    "throttled": "#f3e5f5",
    "recovered": "#e3f2fd",
}


def rate(times: Iterable[float], span: float) -> tuple[list[float], list[float]]:
    """Events per second in BIN-wide bins over ``[0, span)``: (bin starts, rates)."""
    bins = int(span / BIN) + 1
    counts = [0] * bins
    for moment in times:
        index = int(moment / BIN)
        if 0 <= index < bins:
            counts[index] += 1
    return [index * BIN for index in range(bins)], [n / BIN for n in counts]


def plot(runs: Mapping[str, Any], path: Path, outage: Iterable[str]) -> None:
    """Draw ``runs`` (examples/storm.py's Run objects, by mode) into the PNG at ``path``."""
    outage = tuple(outage)
    figure, axes = plt.subplots(4, len(runs), figsize=(13, 10), sharex=True, squeeze=False)
    peak_rate = 1.0
    for column, (mode, run) in enumerate(runs.items()):
        zero = min(run.phase_starts.values())
        span = run.ended - zero
        requests, failures, breaker, latency = (axes[row][column] for row in range(4))
        requests.set_title(f"{mode} gateway", pad=14)

        x, called = rate((call.started - zero for call in run.calls), span)
        _, received = rate((moment - zero for moment, *_ in run.upstream["requests"]), span)
        requests.step(x, called, where="post", label="calls started by the clients")
        requests.step(x, received, where="post", label="requests reaching the upstream")
        peak_rate = max(peak_rate, *called, *received)
        requests.set_ylabel("per second")
        requests.legend(loc="upper left", fontsize=8)

        _, failed = rate((call.ended - zero for call in run.calls if not call.ok), span)
        failures.step(x, failed, where="post", color="tab:red", label="calls that failed")
        failures.set_ylabel("failed calls / s")
        failures.legend(loc="upper left", fontsize=8)

        transitions = run.gateway.get("transitions", [])
        if transitions or mode != "naive":
            times = [0.0] + [moment - zero for moment, _, _ in transitions] + [span]
            levels = [0] + [STATES.get(new, 0) for _, _, new in transitions]
            levels.append(levels[-1])
            breaker.step(times, levels, where="post", color="tab:purple")
        else:
            breaker.text(
                0.5,
                0.5,
                "no circuit breaker",
                ha="center",
                va="center",
                transform=breaker.transAxes,
            )
        breaker.set_yticks(list(STATES.values()), list(STATES))
        breaker.set_ylim(-0.3, 2.3)
        breaker.set_ylabel("breaker")

        ok = [(call.started - zero, 1000 * call.latency) for call in run.calls if call.ok]
        bad = [(call.started - zero, 1000 * call.latency) for call in run.calls if not call.ok]
        if ok:
            latency.scatter(*zip(*ok, strict=True), s=4, color="tab:green", label="succeeded")
        if bad:
            latency.scatter(*zip(*bad, strict=True), s=4, color="tab:red", label="failed")
        latency.set_yscale("log")
        latency.set_ylabel("call latency (ms)")
        latency.set_xlabel("seconds since the run began (by when each call started)")
        latency.legend(loc="upper left", fontsize=8)

        starts = sorted(run.phase_starts.items(), key=lambda item: item[1])
        ends = [moment for _, moment in starts[1:]] + [
            zero + sum(s for _, s in run.scenario.phases)
        ]
        for (phase, began), ended in zip(starts, ends, strict=True):
            for row in range(4):
                axes[row][column].axvspan(
                    began - zero, ended - zero, color=SHADES.get(phase, "#f5f5f5"), zorder=0
                )
            label = phase + (" (outage)" if phase in outage else "")
            requests.text(
                (began + ended) / 2 - zero,
                1.02,
                label,
                ha="center",
                va="bottom",
                fontsize=8,
                transform=requests.get_xaxis_transform(),
            )
    for column in range(len(runs)):
        axes[0][column].set_ylim(0, peak_rate * 1.1)
    figure.suptitle("resilient storm demo: the same load through a naive and a protected gateway")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
