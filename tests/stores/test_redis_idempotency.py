"""The Redis idempotency backend against a real redis-server: scripts, TTLs, round trips."""

from __future__ import annotations

import time
from typing import Any

import pytest

import resilient
from resilient import StoreUnavailable
from resilient._idempotency import CLAIMED, DONE, IN_PROGRESS, REUSED
from resilient.stores import RedisStore
from resilient.testing import FakeClock


@pytest.fixture
def backend(redis_client: Any) -> Any:
    return RedisStore(redis_client, prefix="t")._bind_idempotency(FakeClock())


def test_claim_complete_and_replay(backend: Any, redis_client: Any) -> None:
    key = backend.storage_key("ns", "k")
    assert key.startswith("t:idem:ns:")
    assert backend.claim(key, "o1", "fp", 10_000) == (CLAIMED, None)
    status, left = backend.claim(key, "o2", "fp", 10_000)
    assert status == IN_PROGRESS
    assert 9.0 < left <= 10.0
    assert backend.claim(key, "o2", "other", 10_000) == (REUSED, None)
    assert backend.read(key) == ("pending", "fp", None)
    assert not backend.complete(key, "o2", b"x", 60_000)
    assert backend.complete(key, "o1", b"\x00binary\xff", 60_000)
    assert backend.claim(key, "o3", "fp", 10_000) == (DONE, b"\x00binary\xff")
    assert backend.claim(key, "o3", "other", 10_000) == (REUSED, None)
    assert backend.read(key) == ("done", "fp", b"\x00binary\xff")
    assert 59_000 < redis_client.pttl(key) <= 60_000
    assert not backend.release(key, "o1")


def test_every_record_has_a_ttl(backend: Any, redis_client: Any) -> None:
    pending = backend.storage_key("ns", "pending")
    done = backend.storage_key("ns", "done")
    backend.claim(pending, "o", "fp", 5_000)
    backend.claim(done, "o", "fp", 5_000)
    backend.complete(done, "o", b"r", 90_000)
    assert 4_000 < redis_client.pttl(pending) <= 5_000
    assert 89_000 < redis_client.pttl(done) <= 90_000
    assert all(redis_client.pttl(k) > 0 for k in redis_client.keys("*"))


def test_release_is_owner_checked(backend: Any) -> None:
    key = backend.storage_key("ns", "k")
    backend.claim(key, "o1", "fp", 10_000)
    assert not backend.release(key, "o2")
    assert backend.release(key, "o1")
    assert backend.read(key) is None
    assert backend.claim(key, "o2", "fp", 10_000) == (CLAIMED, None)


def test_an_expired_lease_frees_the_key_and_the_late_owner_cannot_complete(
    backend: Any,
) -> None:
    key = backend.storage_key("ns", "k")
    backend.claim(key, "o1", "fp", 50)
    time.sleep(0.2)  # longer than the lease, however busy the machine
    assert backend.claim(key, "o2", "fp", 10_000) == (CLAIMED, None)
    assert not backend.complete(key, "o1", b"late", 60_000)
    assert backend.complete(key, "o2", b"second", 60_000)
    assert backend.read(key) == ("done", "fp", b"second")


def test_scripts_are_reloaded_after_a_flush(backend: Any, redis_client: Any) -> None:
    key = backend.storage_key("ns", "k")
    backend.claim(key, "o", "fp", 10_000)
    redis_client.script_flush()
    assert backend.complete(key, "o", b"r", 10_000)
    assert backend.claim(key, "o2", "fp", 10_000) == (DONE, b"r")


def test_a_first_call_is_two_round_trips_and_a_replay_one(redis_client: Any) -> None:
    store = RedisStore(redis_client)
    commands: list[tuple[Any, ...]] = []
    execute = redis_client.execute_command

    def counting(*args: Any, **options: Any) -> Any:
        commands.append(args)
        return execute(*args, **options)

    @resilient.idempotent(store=store, key=lambda x: x)
    def work(x: str) -> str:
        return x

    work("warm-up")  # loads the scripts
    redis_client.execute_command = counting
    try:
        work("first")
        assert [c[0] for c in commands] == ["EVALSHA", "EVALSHA"]
        commands.clear()
        work("first")
        assert [c[0] for c in commands] == ["EVALSHA"]
    finally:
        del redis_client.execute_command


def test_an_unreachable_server_is_store_unavailable() -> None:
    import redis

    store = RedisStore(redis.Redis(port=1, socket_connect_timeout=0.5), on_error="allow")
    backend = store._bind_idempotency(FakeClock())
    with pytest.raises(StoreUnavailable):
        backend.claim(backend.storage_key("ns", "k"), "o", "fp", 1_000)


async def test_async_steps_with_a_sync_client(redis_client: Any) -> None:
    backend = RedisStore(redis_client)._bind_idempotency(FakeClock())
    key = backend.storage_key("ns", "k")
    assert await backend.aclaim(key, "o", "fp", 10_000) == (CLAIMED, None)
    assert await backend.acomplete(key, "o", b"r", 10_000)
    assert await backend.aread(key) == ("done", "fp", b"r")
    assert not await backend.arelease(key, "o")


async def test_async_steps_with_an_asyncio_client(async_redis_client: Any) -> None:
    backend = RedisStore(async_redis_client)._bind_idempotency(FakeClock())
    key = backend.storage_key("ns", "k")
    assert await backend.aclaim(key, "o", "fp", 10_000) == (CLAIMED, None)
    assert (await backend.aclaim(key, "o2", "fp", 10_000))[0] == IN_PROGRESS
    assert not await backend.arelease(key, "o2")
    assert await backend.arelease(key, "o")
    assert await backend.aread(key) is None
