"""Shared fixtures of the reliability tests: a Redis server to break, and run figures.

Figures. A test asks for ``reliability_tally`` and adds counts to its part
(``reliability_tally("faults")["calls"] += 1``); at the end of the session each part that
counted something, with its tests' outcomes, is written to ``.reliability/<part>.json`` at
the root of the checkout (git-ignored). docs/reliability.md quotes the figures of a real run.
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .._redis_server import RedisServer, find_redis_server

RESULTS = Path(__file__).resolve().parents[2] / ".reliability"

_tallies: dict[str, Tally] = {}
_outcomes: dict[str, Counter[str]] = {}
_maxima: dict[str, dict[str, float]] = {}
_lock = threading.Lock()
_started = time.time()


class Tally(Counter[str]):
    """Counts of one part (calls made, faults injected...), and the largest values seen."""

    def __init__(self, part: str) -> None:
        super().__init__()
        self.part = part

    def most(self, name: str, value: float) -> None:
        """Keep the largest ``value`` seen under ``name`` (e.g. the longest call)."""
        with _lock:
            maxima = _maxima.setdefault(self.part, {})
            maxima[name] = max(maxima.get(name, value), value)


def _part(nodeid: str) -> str | None:
    name = nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    if not name.startswith("test_"):
        return None
    return name.removeprefix("test_").split("_", 1)[0]


#: The modules whose tests break Redis under redis.asyncio clients (see `_unclosed_connections`).
_CUT_OFF_MODULES = ("test_faults_redis", "test_cluster")


@pytest.fixture(autouse=True)
def _unclosed_connections(request: pytest.FixtureRequest) -> Iterator[None]:
    """Collect, after each test that breaks Redis, what redis-py left unclosed, and count it.

    A redis.asyncio connection whose command is cancelled while its server is killed, paused
    or unreachable (the store cuts async calls off at twice the socket timeout) can be dropped
    by redis-py without being closed; its socket is closed when it is garbage collected, with a
    ResourceWarning. Collected here, right after the test that made it, the warnings are counted
    in the ``faults`` figures (``unclosed_resources``) instead of failing whichever later test
    the garbage collector happens to run in.
    """
    yield
    if request.module.__name__.rsplit(".", 1)[-1] not in _CUT_OFF_MODULES:
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    unclosed = sum(issubclass(w.category, ResourceWarning) for w in caught)
    if unclosed:
        _tally("faults")["unclosed_resources"] += unclosed


def _tally(part: str) -> Tally:
    """The `Tally` of ``part``, made on first use."""
    with _lock:
        tally = _tallies.get(part)
        if tally is None:
            tally = _tallies[part] = Tally(part)
        return tally


@pytest.fixture(scope="session")
def reliability_tally() -> Callable[[str], Tally]:
    """``reliability_tally(part)``: the `Tally` of that part, written out at the end."""
    return _tally


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count each reliability test's outcome under its part (faults, cluster, ...)."""
    part = _part(report.nodeid)
    if part is None:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        with _lock:
            _outcomes.setdefault(part, Counter())[outcome] += 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write ``.reliability/<part>.json`` for each part that ran."""
    parts = set(_tallies) | set(_outcomes)
    if not parts:
        return
    RESULTS.mkdir(exist_ok=True)
    for part in sorted(parts):
        record = {
            "part": part,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "session_seconds": round(time.time() - _started, 1),
            "tests": dict(_outcomes.get(part, {})),
            "counts": dict(sorted(_tallies.get(part, {}).items())),
            "maxima": {k: round(v, 4) for k, v in sorted(_maxima.get(part, {}).items())},
        }
        (RESULTS / f"{part}.json").write_text(json.dumps(record, indent=2) + "\n")


def redis_binary(name: str = "redis-server") -> str:
    """The path of ``redis-server`` (or ``redis-cli``); skip without it, fail under CI=true."""
    import shutil

    if name == "redis-server":
        found = find_redis_server()
    else:  # next to $REDIS_SERVER, else on PATH
        server = os.environ.get("REDIS_SERVER")
        sibling = Path(server).with_name(name) if server else None
        found = str(sibling) if sibling and os.access(sibling, os.X_OK) else shutil.which(name)
    if found is None:
        message = f"{name} is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def fault_server() -> Iterator[RedisServer]:
    """A redis-server of the fault tests' own: they kill, freeze and fill it."""
    server = RedisServer(redis_binary())
    server.start()
    yield server
    server.close()


@pytest.fixture
def fault_redis(fault_server: RedisServer) -> Iterator[RedisServer]:
    """`fault_server` running, awake, without a memory limit or a pause, and empty."""
    import redis

    def heal() -> None:
        fault_server.thaw()
        if not fault_server.running:
            fault_server.start()
        client = redis.Redis.from_url(fault_server.url, socket_timeout=5.0)
        try:
            client.execute_command("CLIENT", "UNPAUSE")
            client.config_set("maxmemory", 0)
            client.flushall()
        finally:
            client.close()

    heal()
    yield fault_server
    heal()


def control_client(server: RedisServer) -> Any:
    """A plain sync client for the test itself (long timeout), not for a policy."""
    import redis

    return redis.Redis.from_url(server.url, socket_timeout=5.0, socket_connect_timeout=5.0)
