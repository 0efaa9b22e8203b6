"""Test configuration: both async backends for every async test, and a real redis-server."""

from __future__ import annotations

import inspect
import os
import platform
import sys
import sysconfig
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ._redis_server import RedisServer, find_redis_server

REDIS_FIXTURES = {"redis_server", "redis_url", "redis_client", "async_redis_client"}


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs once on asyncio and once on trio."""
    return str(request.param)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Mark every ``async def`` test for anyio, so test authors just write ``async def test_``.

    Requesting ``anyio_backend`` here, before the test is parametrized, is what makes each one
    run on both backends.
    """
    if not isinstance(collector, (pytest.Module, pytest.Class)):
        return
    if not collector.istestfunction(obj, name):
        return
    hypothesis = getattr(obj, "hypothesis", None)
    inner = getattr(hypothesis, "inner_test", obj)
    if inspect.iscoroutinefunction(inner):
        pytest.mark.usefixtures("anyio_backend")(pytest.mark.anyio(obj))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that use a Redis fixture with ``redis`` (select them with ``-m redis``)."""
    for item in items:
        if REDIS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)


def _skip_without_speedups(built: bool) -> None:
    """Skip a test of the C extension where it is not built or not wanted.

    Except under ``CI=true`` on CPython on Linux, where setup.py builds it: a missing
    extension there is a failure (set ``RESILIENT_NO_EXTENSIONS=1`` to test without).
    """
    if os.environ.get("RESILIENT_NO_EXTENSIONS"):
        pytest.skip("RESILIENT_NO_EXTENSIONS is set")
    if not built:
        expected = (
            platform.python_implementation() == "CPython"
            and sys.platform.startswith("linux")
            and not sysconfig.get_config_var("Py_GIL_DISABLED")
        )
        message = "resilient._speedups is not built (needs a C compiler and Python headers)"
        if expected and os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(params=["c", "python"])
def gcra_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once with the C memory token bucket and once with the pure Python one.

    Limiters bound while the test runs use the chosen version. The C one is skipped where it
    is not built (see `_skip_without_speedups`).
    """
    from resilient.stores import _memory

    if request.param == "python":
        monkeypatch.setattr(_memory, "_speedups", None)
    else:
        _skip_without_speedups(_memory._speedups is not None)
    return str(request.param)


@pytest.fixture(params=["c", "python"])
def retry_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once with the C success path of ``@retry`` and once with the Python one.

    The C side is the decorated function's wrapper (`resilient._speedups.RetryCall`) and the
    histograms' buffer of durations (`resilient._speedups.Durations`); functions decorated
    and exporters made while the test runs use the chosen version. The C one is skipped where
    it is not built (see `_skip_without_speedups`).
    """
    from resilient import _retry
    from resilient.instrumentation import _calls

    if request.param == "python":
        monkeypatch.setattr(_retry, "_speedups", None)
        monkeypatch.setattr(_calls, "_Durations", None)
    else:
        _skip_without_speedups(_retry._speedups is not None and _calls._Durations is not None)
    return str(request.param)


@pytest.fixture(params=["c", "python"])
def timeout_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once with the C ``__enter__`` / ``__exit__`` of sync timeouts, once with Python.

    The C side is `resilient._speedups.TimeoutHook`; the C one is skipped where it is not
    built (see `_skip_without_speedups`).
    """
    from resilient import _timeout

    if request.param == "python":
        chosen = _timeout.PYTHON_SYNC
    else:
        _skip_without_speedups(_timeout.NATIVE_SYNC is not None)
        assert _timeout.NATIVE_SYNC is not None
        chosen = _timeout.NATIVE_SYNC
    monkeypatch.setattr(_timeout.Timeout, "__enter__", chosen[0])
    monkeypatch.setattr(_timeout.Timeout, "__exit__", chosen[1])
    return str(request.param)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free port on 127.0.0.1, for the whole session.

    Tests may ``stop()``, ``start()`` or ``restart()`` it; the next test that asks for
    ``redis_url`` gets it running again. Without a redis-server binary the tests that need it
    are skipped, except under ``CI=true``, where that is a failure.
    """
    binary = find_redis_server()
    if binary is None:
        message = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = RedisServer(binary)
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of a running, empty redis-server."""
    import redis

    if not redis_server.running:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    """A sync ``redis.Redis`` client connected to the test server."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    yield client
    client.close()


@pytest.fixture
async def async_redis_client(redis_url: str, anyio_backend: str) -> AsyncIterator[Any]:
    """A ``redis.asyncio.Redis`` client (asyncio only: redis.asyncio does not run on trio)."""
    if anyio_backend != "asyncio":
        pytest.skip("redis.asyncio runs on asyncio only")
    import redis.asyncio

    # A blocking pool, as the docs advise: many concurrent tasks queue for a connection
    # instead of failing (redis-py >= 8 caps its default async pool at 100 connections).
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        redis_url, max_connections=50, timeout=2.0, socket_timeout=2.0, socket_connect_timeout=2.0
    )
    client = redis.asyncio.Redis(connection_pool=pool)
    yield client
    await client.aclose()
    await pool.disconnect()
