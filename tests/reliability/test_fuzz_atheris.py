"""Coverage-guided fuzzing of the request parsers with atheris, where atheris installs.

libFuzzer ends its process when it is done, so ``atheris_parsers.py`` runs in a subprocess with
a bounded number of runs; any exception or broken promise in a parser is a crash (non-zero exit)
and the input that caused it is written to the scratch directory and shown here. Under the soak
profile (``HYPOTHESIS_PROFILE=soak``) it runs 20 times as many inputs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ._models_support import SOAK, record

pytest.importorskip("atheris", reason="atheris installs on Linux x86_64 only")

HARNESS = Path(__file__).with_name("atheris_parsers.py")
RUNS = 100_000 * (20 if SOAK else 1)


def test_fuzz_parsers_with_atheris(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(HARNESS), f"-runs={RUNS}", "-max_len=300", "-seed=1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300 if not SOAK else 1800,
        check=False,
    )
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    tail = "\n".join(done.stderr.splitlines()[-30:])
    assert not crashes, f"atheris found a crash {crashes}:\n{tail}"
    assert done.returncode == 0, tail
    assert f"Done {RUNS} runs" in done.stderr
    record(
        "test_fuzz_parsers_with_atheris",
        "request parsers under coverage-guided fuzzing (atheris)",
        inputs=RUNS,
    )
