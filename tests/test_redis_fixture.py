"""The redis-server the tests start is real: it answers, it can be killed, and it comes back."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import redis

from ._redis_server import RedisServer


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


def test_server_answers_ping(
    redis_server: RedisServer, redis_client: Any, request: pytest.FixtureRequest
) -> None:
    assert request.node.get_closest_marker("redis") is not None
    assert redis_server.running
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.ping()
    assert redis_client.ping() is True


def test_stopped_server_refuses_connections_and_starts_on_the_same_port(
    redis_server: RedisServer, redis_url: str
) -> None:
    port = redis_server.port
    redis_server.stop()
    assert not redis_server.running
    assert not redis_server.ping()
    assert refuses_connections(port)
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=0.5, socket_timeout=0.5)
    with pytest.raises(redis.ConnectionError):
        client.ping()
    redis_server.start()
    assert redis_server.running
    assert redis_server.port == port
    assert client.ping() is True  # the same client reconnects
    client.close()


def test_restart_comes_back_empty_on_the_same_port(
    redis_server: RedisServer, redis_client: Any
) -> None:
    port = redis_server.port
    first = redis_server.process
    redis_client.set("key", "value")
    redis_server.restart()
    assert redis_server.running
    assert redis_server.port == port
    assert redis_server.process is not first
    assert redis_client.get("key") is None  # no persistence: a restart loses everything


def test_redis_url_restarts_a_server_a_test_left_stopped(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    redis_server.stop()
    url = request.getfixturevalue("redis_url")
    assert redis_server.running
    client = redis.Redis.from_url(url)
    assert client.ping() is True
    client.close()


def test_each_test_starts_with_an_empty_server(redis_client: Any) -> None:
    assert redis_client.dbsize() == 0
    redis_client.set("left-behind", "1", ex=60)


def test_each_test_starts_with_an_empty_server_again(redis_client: Any) -> None:
    assert redis_client.dbsize() == 0
    redis_client.set("left-behind", "1", ex=60)


async def test_sync_client_works_in_async_tests_on_both_backends(redis_client: Any) -> None:
    assert redis_client.ping() is True


async def test_async_client_on_asyncio(async_redis_client: Any, anyio_backend: str) -> None:
    assert anyio_backend == "asyncio"  # skipped on trio, where redis.asyncio cannot run
    assert await async_redis_client.ping() is True


def test_a_second_server_can_run_beside_the_session_one(redis_server: RedisServer) -> None:
    with RedisServer(redis_server.binary) as other:
        assert other.port != redis_server.port
        assert other.ping()
        port = other.port
    assert refuses_connections(port)


def test_tests_using_no_redis_fixture_are_not_marked(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("redis") is None
