"""A store outage is logged once when it starts and once when it ends, never once per call."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import resilient
from resilient.stores import RedisStore
from resilient.testing import FakeClock

from .._redis_server import RedisServer

CLOSED_PORT = "redis://127.0.0.1:1/0"


def _store_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name == "resilient" and "store" in r.getMessage()
    ]


def test_a_limiter_on_an_unreachable_redis_logs_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="resilient")
    limiter = resilient.TokenBucket(rate=10, capacity=10, store=RedisStore.from_url(CLOSED_PORT))
    allowed = [limiter.try_acquire().allowed for _ in range(10)]
    assert allowed == [True] * 10  # failing open stays the default
    lines = _store_lines(caplog)
    assert len(lines) == 1
    level, message = lines[0]
    assert level == "WARNING"
    assert "redis://127.0.0.1:1/0" in message
    assert "fail open" in message
    record = next(r for r in caplog.records if r.name == "resilient")
    assert record.resilient_operation == "rate_limit"  # type: ignore[attr-defined]
    assert record.resilient_action == "allow"  # type: ignore[attr-defined]


def test_the_warning_shows_with_no_logging_configured() -> None:
    code = textwrap.dedent(
        f"""
        import resilient
        from resilient.stores import RedisStore

        limiter = resilient.TokenBucket(
            rate=10, capacity=10, store=RedisStore.from_url({CLOSED_PORT!r})
        )
        print(sum(limiter.try_acquire().allowed for _ in range(10)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "10"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "store redis://127.0.0.1:1/0" in lines[0]
    assert "unavailable" in lines[0]


def test_every_store_logs_its_own_outage(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="resilient")
    for _ in range(2):
        limiter = resilient.TokenBucket(rate=1, capacity=1, store=RedisStore.from_url(CLOSED_PORT))
        limiter.try_acquire()
        limiter.try_acquire()
    assert len(_store_lines(caplog)) == 2


def test_a_restart_logs_one_warning_then_one_info(
    redis_server: RedisServer, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="resilient")
    store = RedisStore.from_url(redis_url)
    clock = FakeClock()
    limiter = resilient.TokenBucket(rate=1000, capacity=1000, store=store)
    breaker = resilient.CircuitBreaker("payments", store=store, clock=clock)
    try:
        assert limiter.try_acquire().allowed
        breaker.call(lambda: None)
        assert _store_lines(caplog) == []
        redis_server.stop()
        for _ in range(5):
            assert limiter.try_acquire().allowed
            breaker.call(lambda: None)
            clock.advance(5.0)  # past error_retry_after: the breaker asks Redis again
        assert [level for level, _ in _store_lines(caplog)] == ["WARNING"]
        redis_server.start()
        for _ in range(5):
            assert limiter.try_acquire().allowed
            breaker.call(lambda: None)
            clock.advance(5.0)
        lines = _store_lines(caplog)
        assert [level for level, _ in lines] == ["WARNING", "INFO"]
        assert "available again" in lines[1][1]
    finally:
        if not redis_server.running:
            redis_server.start()
        store.client.close()


async def test_async_calls_log_the_outage_once(
    caplog: pytest.LogCaptureFixture, anyio_backend: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="resilient")
    store: Any = RedisStore.from_url(CLOSED_PORT, asynchronous=anyio_backend == "asyncio")
    limiter = resilient.TokenBucket(rate=10, capacity=10, store=store)
    for _ in range(5):
        assert (await limiter.atry_acquire()).allowed
    assert [level for level, _ in _store_lines(caplog)] == ["WARNING"]


def test_threads_failing_together_log_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    import threading

    caplog.set_level(logging.DEBUG, logger="resilient")
    limiter = resilient.TokenBucket(rate=10, capacity=10, store=RedisStore.from_url(CLOSED_PORT))
    start = threading.Barrier(8)
    allowed: list[bool] = []

    def hammer() -> None:
        start.wait()
        for _ in range(20):
            allowed.append(limiter.try_acquire().allowed)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(allowed) == 160
    assert all(allowed)
    assert [level for level, _ in _store_lines(caplog)] == ["WARNING"]
