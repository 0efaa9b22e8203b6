"""Every Redis-backed policy on a real three-master Redis Cluster, through redis-py's clients.

The keys of one script call share a ``{hash tag}`` (DESIGN §2.5, §3), so no call meets a
CROSSSLOT error, and the keys of many names spread over the masters. The policies keep their
semantics across two clients (two processes' worth of state): limits are shared, a breaker
opened by one client rejects on the other, an idempotent call runs once, dead letters are
parked, listed, replayed and purged. When a master dies, calls whose keys live on it follow
the store-failure rules, the others carry on; when no node answers, the store raises
`StoreUnavailable`, never redis-py's own cluster exception.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
import redis
import redis.asyncio.cluster
import redis.backoff
import redis.cluster
import redis.retry

from resilient import (
    CircuitBreaker,
    CircuitOpenError,
    DeadLetterQueue,
    SlidingWindow,
    StoreUnavailable,
    TokenBucket,
    idempotent,
)
from resilient.integrations.asgi import IdempotencyMiddleware
from resilient.stores import RedisStore

from ._cluster import RedisCluster3
from .conftest import Tally, redis_binary

pytestmark = pytest.mark.redis

SOCKET_TIMEOUT = 0.2
BOUND = 2 * SOCKET_TIMEOUT + 0.8


def _start_cluster() -> RedisCluster3:
    cluster = RedisCluster3(redis_binary("redis-server"), redis_binary("redis-cli"))
    cluster.start()
    return cluster


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisCluster3]:
    """A three-master cluster for this module's tests (they never break it)."""
    cluster = _start_cluster()
    try:
        yield cluster
    finally:
        cluster.close()


def sync_cluster_client(cluster: RedisCluster3) -> Any:
    return redis.cluster.RedisCluster.from_url(
        cluster.url,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
    )


def async_cluster_client(cluster: RedisCluster3) -> Any:
    return redis.asyncio.cluster.RedisCluster.from_url(
        cluster.url,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
    )


def _all_keys(cluster: RedisCluster3) -> dict[int, list[bytes]]:
    """The keys on each master, by port."""
    found: dict[int, list[bytes]] = {}
    for node in cluster.nodes:
        client = redis.Redis(host=node.host, port=node.port, socket_timeout=5.0)
        try:
            found[node.port] = list(client.scan_iter(count=1000))
        finally:
            client.close()
    return found


def _check_layout(cluster: RedisCluster3, tally: Tally) -> None:
    """Keys spread over the masters; each key has a TTL (dead letters excepted)."""
    by_node = _all_keys(cluster)
    assert sum(1 for keys in by_node.values() if keys) >= 2, by_node
    for port, keys in by_node.items():
        client = redis.Redis(port=port, socket_timeout=5.0)
        try:
            for key in keys:
                tally["cluster_keys_checked"] += 1
                if b":dlq}" in key:
                    assert client.pttl(key) == -1
                else:
                    assert client.pttl(key) > 0, key
        finally:
            client.close()


def _flush(cluster: RedisCluster3) -> None:
    for node in cluster.nodes:
        client = redis.Redis(host=node.host, port=node.port, socket_timeout=5.0)
        try:
            client.flushall()
        finally:
            client.close()


def _limiters(store: RedisStore, n: int) -> list[Any]:
    return [
        limiter
        for i in range(n)
        for limiter in (
            TokenBucket(rate=1e-3, capacity=3, store=store, name=f"tb{i}"),
            SlidingWindow(limit=3, window=600.0, store=store, name=f"sw{i}"),
            SlidingWindow(limit=3, window=600.0, precise=True, store=store, name=f"log{i}"),
        )
    ]


def test_every_policy_works_on_a_cluster_with_two_clients(
    redis_cluster: RedisCluster3, reliability_tally: Callable[[str], Tally]
) -> None:
    tally = reliability_tally("cluster")
    _flush(redis_cluster)
    first, second = sync_cluster_client(redis_cluster), sync_cluster_client(redis_cluster)
    one, two = RedisStore(first, on_error="raise"), RedisStore(second, on_error="raise")
    assert "redis-cluster://127.0.0.1:" in repr(one._health.store)

    # Limits: three units per key between the two clients, then refusals, on every master.
    for a, b in zip(_limiters(one, 8), _limiters(two, 8), strict=True):
        for key in ("user:1", "a key with spaces {and braces}"):
            allowed = [a.try_acquire(key).allowed, b.try_acquire(key).allowed]
            allowed += [a.try_acquire(key).allowed, b.try_acquire(key).allowed]
            tally["cluster_calls"] += 4
            assert allowed == [True, True, True, False], (a, key)
            assert b.try_acquire(key).retry_after > 0

    # A breaker opened through one client rejects through the other.
    breakers = [CircuitBreaker("pay", store=s, consecutive_failures=2) for s in (one, two)]
    for _ in range(2):
        with pytest.raises(ZeroDivisionError):
            breakers[0].call(lambda: 1 / 0)
    with pytest.raises(CircuitOpenError):
        breakers[1].call(lambda: 1)
    tally["cluster_calls"] += 3

    # An idempotent call runs once, whichever client sees it.
    runs: list[str] = []

    def charge(order: str) -> int:
        runs.append(order)
        return len(order)

    charges = [idempotent(store=s, key=lambda order: order)(charge) for s in (one, two)]
    for i in range(10):
        order = f"order-{i}"
        assert charges[i % 2](order) == charges[(i + 1) % 2](order) == len(order)
        tally["cluster_calls"] += 2
    assert sorted(runs) == sorted(f"order-{i}" for i in range(10))

    # Dead letters: parked through one client, replayed through the other.
    queues = [DeadLetterQueue("orders", store=s) for s in (one, two)]

    def handle(order: str) -> None:
        raise ValueError(order)

    capture = queues[0].capture()(handle)
    for i in range(5):
        assert capture(f"order-{i}") is None
    assert queues[1].count() == 5
    assert [entry.args for entry in queues[1].list(10)] == [[f"order-{i}"] for i in range(5)]
    replayed: list[str] = []
    result = queues[1].replay(handler=replayed.append)
    assert (result.replayed, replayed) == (5, [f"order-{i}" for i in range(5)])
    capture("again")
    assert queues[1].purge() == 1
    assert queues[0].count() == 0
    tally["cluster_calls"] += 12

    _check_layout(redis_cluster, tally)
    first.close()
    second.close()


@pytest.mark.parametrize("client", ["redis.asyncio", "sync-in-threads"])
async def test_every_async_policy_works_on_a_cluster(
    redis_cluster: RedisCluster3,
    client: str,
    anyio_backend: str,
    reliability_tally: Callable[[str], Tally],
) -> None:
    if client == "redis.asyncio" and anyio_backend != "asyncio":
        pytest.skip("redis.asyncio runs on asyncio only")
    tally = reliability_tally("cluster")
    _flush(redis_cluster)
    make = async_cluster_client if client == "redis.asyncio" else sync_cluster_client
    clients = [make(redis_cluster), make(redis_cluster)]
    one, two = (RedisStore(c, on_error="raise") for c in clients)

    for a, b in zip(_limiters(one, 6), _limiters(two, 6), strict=True):
        allowed = [(await a.atry_acquire("user:1")).allowed for _ in range(2)]
        allowed += [(await b.atry_acquire("user:1")).allowed for _ in range(2)]
        tally["cluster_calls"] += 4
        assert allowed == [True, True, True, False], a

    breakers = [CircuitBreaker("apay", store=s, consecutive_failures=2) for s in (one, two)]

    async def fail() -> None:
        raise ZeroDivisionError

    async def ok() -> int:
        return 1

    for _ in range(2):
        with pytest.raises(ZeroDivisionError):
            await breakers[0].acall(fail)
    with pytest.raises(CircuitOpenError):
        await breakers[1].acall(ok)
    tally["cluster_calls"] += 3

    runs: list[str] = []

    async def charge(order: str) -> int:
        runs.append(order)
        return len(order)

    charges = [idempotent(store=s, key=lambda order: order)(charge) for s in (one, two)]
    for i in range(6):
        assert await charges[i % 2](f"o{i}") == await charges[(i + 1) % 2](f"o{i}") == 2
        tally["cluster_calls"] += 2
    assert sorted(runs) == [f"o{i}" for i in range(6)]

    # The idempotency middleware: one run per key, the replay marked as such.
    app_runs: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        app_runs.append(1)
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"created"})

    transport = httpx.ASGITransport(app=IdempotencyMiddleware(app, store=one))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for i in range(4):
            headers = {"Idempotency-Key": f'"k{i}"'}
            first = await http.post("/orders", content=b"{}", headers=headers)
            again = await http.post("/orders", content=b"{}", headers=headers)
            assert (first.status_code, again.status_code) == (201, 201)
            assert again.headers["idempotent-replayed"] == "true"
            tally["cluster_calls"] += 2
    assert len(app_runs) == 4

    queues = [DeadLetterQueue("aorders", store=s) for s in (one, two)]

    async def handle(order: str) -> None:
        raise ValueError(order)

    capture = queues[0].capture()(handle)
    for i in range(4):
        assert await capture(f"o{i}") is None
    assert await queues[1].acount() == 4
    replayed: list[str] = []

    async def replay(order: str) -> None:
        replayed.append(order)

    assert (await queues[1].areplay(handler=replay)).replayed == 4
    assert replayed == [f"o{i}" for i in range(4)]
    tally["cluster_calls"] += 10

    await anyio.to_thread.run_sync(_check_layout, redis_cluster, tally)
    for c in clients:
        if client == "redis.asyncio":
            await c.aclose()
        else:
            c.close()


def _outcome(call: Callable[[], Any]) -> tuple[str, float]:
    started = time.monotonic()
    try:
        call()
        kind = "ok"
    except StoreUnavailable:
        kind = "unavailable"
    except ValueError as error:
        notes = getattr(error, "__notes__", ())
        kind = "not parked" if any("not parked" in note for note in notes) else "undocumented"
    return kind, time.monotonic() - started


def test_a_dead_master_fails_its_keys_only_and_no_node_at_all_is_store_unavailable(
    reliability_tally: Callable[[str], Tally],
) -> None:
    tally = reliability_tally("cluster")
    cluster = _start_cluster()
    try:
        client = sync_cluster_client(cluster)
        store = RedisStore(client, on_error="raise")
        limiters = [
            TokenBucket(rate=1e-3, capacity=100, store=store, name=f"n{i}") for i in range(12)
        ]
        breakers = [CircuitBreaker(f"b{i}", store=store) for i in range(6)]

        @idempotent(store=store, key=lambda order: order)
        def charge(order: str) -> str:
            return order

        def poison(order: str) -> None:
            raise ValueError(order)

        queues = [DeadLetterQueue(f"q{i}", store=store) for i in range(6)]
        handlers = [q.capture()(poison) for q in queues]

        def calls() -> list[Callable[[], Any]]:
            made: list[Callable[[], Any]] = [
                lambda lim=lim: lim.try_acquire("k") for lim in limiters
            ]
            made += [lambda b=b: b.call(int) for b in breakers]
            made += [lambda i=i: charge(f"order-{i}-{uuid.uuid4().hex}") for i in range(12)]
            made += [lambda h=h: h("x") for h in handlers]
            return made

        def run_all(fault: bool = False) -> list[str]:
            kinds = []
            for call in calls():
                kind, elapsed = _outcome(call)
                assert elapsed < BOUND, elapsed
                tally["cluster_calls"] += 1
                if fault:
                    tally["cluster_calls_during_faults"] += 1
                    tally.most("longest_cluster_call_during_a_fault_s", elapsed)
                kinds.append(kind)
            return kinds

        before = run_all()
        assert set(before) == {"ok"}, before
        # The master that holds the first queue's keys dies (so some dead letter cannot be parked).
        owner = client.get_node_from_key(store._key("q0", "dlq", "stream"))
        dead = next(node for node in cluster.nodes if node.port == owner.port)
        dead.stop()
        tally["cluster_faults"] += 1
        during = run_all(fault=True)
        assert set(during) <= {"ok", "unavailable", "not parked"}, during
        # Keys on the two live masters are served; those on the dead one fail as documented.
        assert "ok" in during, during
        assert "unavailable" in during, during
        assert "not parked" in during, during
        for node in cluster.nodes:
            node.stop()
        tally["cluster_faults"] += 1
        down = run_all(fault=True)
        assert set(down) <= {"unavailable", "not parked"}, down
        # Back with the same slots (each node keeps its nodes.conf), empty.
        for node in cluster.nodes:
            node.start()
        deadline = time.monotonic() + 30
        while not all(cluster._ok(node) for node in cluster.nodes):
            assert time.monotonic() < deadline, "the cluster did not come back"
            time.sleep(0.1)
        deadline = time.monotonic() + 15
        while set(after := run_all()) != {"ok"}:
            assert time.monotonic() < deadline, f"the policies did not recover: {after}"
            time.sleep(0.2)
        tally["cluster_recoveries"] += 1
        client.close()
    finally:
        cluster.close()
