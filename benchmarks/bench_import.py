"""``import resilient`` against ``import tenacity`` and ``import pybreaker`` (and a few more).

Each import runs in a fresh interpreter, ``python -X importtime -c "import NAME"``; the row is
the cumulative import time the interpreter reports for the top-level module (the time spent
inside ``import NAME``, including what it imports that was not loaded yet, and excluding the
interpreter's own start-up). The interpreters take turns module by module; a row is the median
of ``SETTINGS.import_runs`` runs, its spread the fastest and the slowest. The quick run times
only resilient, tenacity and pybreaker.

No target; for the record. `resilient` loads its subpackages (stores, config, testing,
instrumentation, integrations) on first use, so they are not part of its import time.
"""

from __future__ import annotations

import subprocess
import sys

from ._harness import SETTINGS, Report, Timing

MODULES = ["resilient", "tenacity", "pybreaker", "backoff", "stamina", "circuitbreaker"]
#: The quick run times only these.
QUICK_MODULES = MODULES[:3]


def import_seconds(module: str) -> float:
    """Cumulative seconds of ``import module`` in a fresh interpreter, from ``-X importtime``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in done.stderr.splitlines():
        # import time: self [us] | cumulative | imported package
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1e6
    raise RuntimeError(f"-X importtime printed no line for {module}")


def run(report: Report) -> None:
    modules = QUICK_MODULES if SETTINGS.quick else MODULES
    samples: dict[str, list[float]] = {m: [] for m in modules}
    for i in range(SETTINGS.import_runs):
        order = modules[i % len(modules) :] + modules[: i % len(modules)]
        for module in order:
            try:
                samples[module].append(import_seconds(module))
            except subprocess.CalledProcessError:
                samples.pop(module, None)
                print(f"  {module} does not import here: skipped", flush=True)
    group = "import time (fresh interpreter, -X importtime, cumulative)"
    times = {m: Timing.of(v) for m, v in samples.items() if v}
    for module, timing in times.items():
        report.add(group, f"import {module}", timing, baseline=module == "resilient")
