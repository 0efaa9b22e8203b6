"""Shared pieces of the model, stress, cancellation and fuzz tests.

- `bounded`: hypothesis settings sized for ``make test`` (a few seconds per test on two cores),
  multiplied under the ``soak`` profile (``HYPOTHESIS_PROFILE=soak``).
- `record`: counts what a test exercised (calls, decisions, inputs...) into
  ``build/reliability/models.json``, one entry per test, so the figures of a real run can be
  quoted. The file is written when the test process exits, by every process that ran any of
  these tests: it describes the last run only.
- `Holder`: keeps a ``with policy:`` block open across the steps of a state machine (a
  generator per block, so each exit is matched to its own entry).
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

__all__ = ["SOAK", "Holder", "Neutral", "Boom", "bounded", "record"]

#: ``HYPOTHESIS_PROFILE=soak`` runs every model and fuzz test with many more examples.
SOAK = os.environ.get("HYPOTHESIS_PROFILE", "") == "soak"
_SCALE = 20 if SOAK else 1

settings.register_profile(
    "soak",
    max_examples=2000,
    stateful_step_count=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def bounded(examples: int, steps: int | None = None) -> settings:
    """Settings for one test: ``examples`` (and ``steps`` per state machine run), no deadline."""
    options: dict[str, Any] = {
        "max_examples": examples * _SCALE,
        "deadline": None,
        "suppress_health_check": [
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    }
    if steps is not None:
        options["stateful_step_count"] = steps * (2 if SOAK else 1)
    return settings(**options)


ROOT = Path(__file__).resolve().parents[2]
SUMMARY = ROOT / "build" / "reliability" / "models.json"
_lock = threading.Lock()
_entries: dict[str, dict[str, Any]] = {}


def record(test: str, guarantee: str, **counts: int | float | str) -> None:
    """Add ``counts`` (e.g. ``calls=1000``, ``examples=50``) to ``test``'s entry.

    Numbers add up when a test records several times (each example, parametrization,
    backend). Cheap: the file is written once, when the process exits.
    """
    with _lock:
        entry = _entries.get(test)
        if entry is None:
            entry = _entries[test] = {"guarantee": guarantee}
        for name, value in counts.items():
            if isinstance(value, str):
                entry[name] = value
            else:
                entry[name] = entry.get(name, 0) + value


@atexit.register
def _save() -> None:
    with _lock:
        if not _entries:
            return
        totals: dict[str, int | float] = {}
        for item in _entries.values():
            for name, value in item.items():
                if name != "guarantee" and not isinstance(value, str):
                    totals[name] = totals.get(name, 0) + value
        document = {
            "format": 1,
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "profile": "soak" if SOAK else "default",
            "totals": totals,
            "tests": dict(sorted(_entries.items())),
        }
        temporary = SUMMARY.with_suffix(f".{os.getpid()}.tmp")
        try:
            SUMMARY.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
            temporary.replace(SUMMARY)
        except OSError:  # a read-only checkout: the figures are a by-product, not a test
            pass


class Boom(Exception):
    """The failure the models count."""


class Neutral(BaseException):
    """Neither success nor failure for a circuit breaker (like an interrupt)."""


class Holder:
    """One open ``with policy:`` block, entered now and exited later with a chosen outcome."""

    def __init__(self, policy: Any) -> None:
        self._gen = self._block(policy)
        self.entered_value = next(self._gen)  # enters, or raises what the entry raised

    @staticmethod
    def _block(policy: Any) -> Generator[Any, BaseException | None, None]:
        with policy as value:
            error = yield value
            if error is not None:
                raise error

    def finish(self, error: BaseException | None = None) -> None:
        """Leave the block normally (``error=None``) or by raising ``error`` inside it."""
        try:
            self._gen.send(error)
        except StopIteration:
            return
        except BaseException as raised:
            if raised is not error:
                raise
            return
        raise AssertionError("the block did not end")
