"""The redis-server the tests start is real: it answers, it can be killed, and it comes back."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from ._redis_server import RedisServer


def test_server_answers_ping(redis_client: Any) -> None:
    assert redis_client.ping() is True


def test_stopped_server_refuses_connections_and_restarts_on_the_same_port(
    redis_server: RedisServer, redis_url: str
) -> None:
    port = redis_server.port
    redis_server.stop()
    assert not redis_server.running
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=0.5)
    with pytest.raises(redis.ConnectionError):
        client.ping()
    redis_server.start()
    assert redis_server.port == port
    assert client.ping() is True
    client.close()


def test_each_test_starts_with_an_empty_server(redis_client: Any) -> None:
    assert redis_client.dbsize() == 0
    redis_client.set("left-behind", "1", ex=60)
