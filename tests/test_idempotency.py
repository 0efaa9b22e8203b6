"""`resilient.idempotent`: once per key, replays, reuse, failures, leases, both stores."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pydantic
import pytest

import resilient
from resilient import (
    IdempotencyInProgress,
    IdempotencyKeyReused,
    IdempotencyLeaseLost,
    StoreUnavailable,
)
from resilient.instrumentation import (
    IdempotencyLeaseLostEvent,
    IdempotentReplay,
    subscribe,
    unsubscribe,
)
from resilient.stores import MemoryStore, RedisStore
from resilient.testing import FakeClock

FRESH = itertools.count()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Any:
    """A MemoryStore, or a RedisStore with a sync client (async calls run it in a thread)."""
    if request.param == "memory":
        return MemoryStore()
    client = request.getfixturevalue("redis_client")
    return RedisStore(client, on_error="allow")


@pytest.fixture
def events() -> Iterator[list[Any]]:
    seen: list[Any] = []
    subscribe(seen.append)
    yield seen
    unsubscribe(seen.append)


@dataclasses.dataclass
class Receipt:
    order_id: str
    amount: int


class Invoice(pydantic.BaseModel):
    number: int
    lines: list[str]


def test_the_first_call_runs_and_later_calls_replay_its_result(store: Any) -> None:
    calls: list[str] = []

    @resilient.idempotent(store=store, key=lambda order_id, amount: order_id)
    def charge(order_id: str, amount: int) -> Receipt:
        calls.append(order_id)
        return Receipt(order_id, amount)

    first = charge("a", 5)
    again = charge("a", 5)
    assert first == again == Receipt("a", 5)
    assert isinstance(again, Receipt)
    assert calls == ["a"]
    assert charge("b", 5) == Receipt("b", 5)
    assert calls == ["a", "b"]


def test_positional_and_keyword_arguments_are_the_same_call(store: Any) -> None:
    calls = []

    @resilient.idempotent(store=store, key=lambda order_id, amount=1: order_id)
    def charge(order_id: str, amount: int = 1) -> int:
        calls.append(amount)
        return amount

    assert charge("a", 5) == 5
    assert charge("a", amount=5) == 5
    assert charge(order_id="a", amount=5) == 5
    assert calls == [5]
    assert charge("d") == charge("d", 1) == 1  # defaults are part of the binding
    assert calls == [5, 1]


def test_the_same_key_with_other_arguments_is_refused(store: Any) -> None:
    @resilient.idempotent(store=store, key=lambda order_id, amount: order_id)
    def charge(order_id: str, amount: int) -> int:
        return amount

    charge("a", 5)
    with pytest.raises(IdempotencyKeyReused) as caught:
        charge("a", 6)
    assert caught.value.key == "a"


@pytest.mark.parametrize(
    ("first", "other"),
    [
        ((1,), (True,)),  # 1 == True, but they are not the same argument
        ((1,), (1.0,)),
        ((0.0,), (-0.0,)),
        ((1,), ("1",)),
        (("x" * 60,), ("x" * 60 + "y",)),  # past EXACT_MAX: encoded, then digested
        (("x" * 500,), ("x" * 499 + "y",)),
        ((2**64,), (2**64 + 1,)),  # past 64 bits: encoded
        ((None,), ("None",)),
        (([1, 2],), ([1, 3],)),  # JSON
    ],
)
def test_arguments_that_differ_in_type_or_value_are_never_the_same_call(
    store: Any, first: tuple[Any, ...], other: tuple[Any, ...]
) -> None:
    @resilient.idempotent(store=store, key=lambda value: "k", result_type=int)
    def call(value: Any) -> int:
        return 1

    assert call(*first) == call(*first) == call(value=first[0]) == 1
    with pytest.raises(IdempotencyKeyReused):
        call(*other)


@pytest.mark.parametrize("key", ["k", "k" * 64, "k" * 65, "é" * 70, "#" + "0" * 64, "a:b"])
def test_short_long_and_unicode_keys_are_separate_and_replay(store: Any, key: str) -> None:
    runs = []

    @resilient.idempotent(store=store, key=lambda name: name)
    def call(name: str) -> int:
        runs.append(name)
        return len(runs)

    assert call(key) == call(key) == 1
    assert call(key + "x") == 2  # one character more: another key
    assert runs == [key, key + "x"]


def test_memory_keys_and_fingerprints_are_held_as_they_are_only_when_short() -> None:
    from resilient._idempotency import exact_fingerprint, exact_key

    prefix = "idem:2:ns:"
    assert exact_key(prefix, "k" * 64) == prefix + "k" * 64
    long = exact_key(prefix, "k" * 65)
    assert long == prefix + "#" + hashlib.sha256(b"k" * 65).hexdigest()
    assert len(exact_key(prefix, "k" * 100_000)) == len(prefix) + 65
    # The namespace's length keeps prefixes apart whatever the keys hold.
    store = MemoryStore()
    backend = store._bind_idempotency(FakeClock())
    assert backend.storage_key("a:b", "c") != backend.storage_key("a", "b:c")

    def encode(values: tuple[Any, ...]) -> bytes:
        return repr(values).encode()

    assert exact_fingerprint(("a", 5), encode) == ("a", 5)
    assert exact_fingerprint((True,), encode) == b"(True,)"
    digested = exact_fingerprint(("x" * 65,), encode)
    assert digested[:1] == b"#"
    assert len(digested) == 33


def test_memory_replays_are_read_without_waiting_for_the_store_lock() -> None:
    store = MemoryStore()

    @resilient.idempotent(store=store, key=lambda order_id: order_id)
    def charge(order_id: str) -> int:
        return 7

    charge("a")
    served: list[int] = []
    replay = threading.Thread(target=lambda: served.append(charge("a")))
    with store._lock:  # held by another step: a stored result is still served
        replay.start()
        replay.join(timeout=5)
        assert served == [7]
    replay.join()


def test_an_exception_releases_the_key_so_a_retry_runs(store: Any) -> None:
    attempts = []

    @resilient.idempotent(store=store, key=lambda x: x)
    def flaky(x: str) -> str:
        attempts.append(x)
        if len(attempts) == 1:
            raise ConnectionError("boom")
        return x.upper()

    with pytest.raises(ConnectionError):
        flaky("k")
    assert flaky("k") == "K"
    assert flaky("k") == "K"
    assert attempts == ["k", "k"]


def test_a_result_that_cannot_be_encoded_is_a_type_error_and_releases_the_key(
    store: Any,
) -> None:
    results: list[Any] = [object(), "fine"]

    @resilient.idempotent(store=store, key=lambda x: x)
    def make(x: str):  # type: ignore[no-untyped-def]  # no annotation: plain JSON only
        return results.pop(0)

    with pytest.raises(TypeError, match="JSON"):
        make("k")
    assert make("k") == "fine"


def test_a_result_of_the_wrong_type_for_its_annotation_is_a_type_error(store: Any) -> None:
    @resilient.idempotent(store=store, key=lambda x: x)
    def wrong(x: str) -> int:
        return "not an int"  # type: ignore[return-value]

    with pytest.raises(TypeError):
        wrong("k")


def test_dataclasses_and_pydantic_models_round_trip(store: Any) -> None:
    @resilient.idempotent(store=store, key=lambda n: str(n))
    def invoice(n: int) -> Invoice:
        return Invoice(number=n, lines=["a", "b"])

    @resilient.idempotent(store=store, key=lambda n: str(n), result_type=list[Receipt])
    def receipts(n: int):  # type: ignore[no-untyped-def]
        return [Receipt("x", n)]

    assert invoice(3) == invoice(3) == Invoice(number=3, lines=["a", "b"])
    assert receipts(2) == receipts(2) == [Receipt("x", 2)]
    assert isinstance(receipts(2)[0], Receipt)


def test_functions_are_namespaced_so_they_never_share_a_key(store: Any) -> None:
    @resilient.idempotent(store=store, key=lambda x: x)
    def one(x: str) -> str:
        return "one"

    @resilient.idempotent(store=store, key=lambda x: x)
    def two(x: str) -> str:
        return "two"

    assert (one("k"), two("k"), one("k"), two("k")) == ("one", "two", "one", "two")


def test_redis_keys_are_prefix_idem_namespace_and_key_digest(redis_client: Any) -> None:
    store = RedisStore(redis_client, prefix="app")

    @resilient.idempotent(store=store, key=lambda x: x, ttl=60)
    def fn(x: str) -> str:
        return x

    fn("order-1")
    digest = hashlib.sha256(b"order-1").hexdigest()
    namespace = f"{__name__}.test_redis_keys_are_prefix_idem_namespace_and_key_digest.<locals>.fn"
    key = f"app:idem:{namespace}:{digest}"
    assert redis_client.exists(key)
    assert 0 < redis_client.pttl(key) <= 60_000
    assert redis_client.keys("*") == [key.encode()]


def test_a_pending_claim_in_redis_has_the_lease_as_its_ttl(redis_client: Any) -> None:
    store = RedisStore(redis_client)
    ttls = []

    @resilient.idempotent(store=store, key=lambda x: x, lock_timeout=30, namespace="ns")
    def fn(x: str) -> str:
        (key,) = redis_client.keys("*")
        ttls.append(redis_client.pttl(key))
        return x

    fn("k")
    assert 25_000 < ttls[0] <= 30_000


def test_methods_are_fingerprinted_without_self(store: Any) -> None:
    class Service:
        def __init__(self) -> None:
            self.calls = 0

        @resilient.idempotent(store=store, key=lambda self, x: str(x))
        def work(self, x: int) -> int:
            self.calls += 1
            return x * 2

    a, b = Service(), Service()
    assert a.work(2) == b.work(2) == 4
    assert (a.calls, b.calls) == (1, 0)


def test_wait_zero_raises_in_progress_with_the_time_left_on_the_lease(store: Any) -> None:
    entered = threading.Event()
    release = threading.Event()
    policy = resilient.idempotent(store=store, key=lambda x: x, lock_timeout=30, wait=0)

    @policy
    def slow(x: str) -> str:
        entered.set()
        release.wait(10)
        return x

    worker = threading.Thread(target=slow, args=("k",))
    worker.start()
    try:
        assert entered.wait(10)
        with pytest.raises(IdempotencyInProgress) as caught:
            slow("k")
        assert 0 < caught.value.retry_after <= 30
    finally:
        release.set()
        worker.join(10)
    assert slow("k") == "k"


def test_concurrent_duplicates_wait_and_get_the_first_result(store: Any) -> None:
    calls = []
    gate = threading.Event()

    @resilient.idempotent(store=store, key=lambda x: x)
    def work(x: str) -> list[int]:
        calls.append(x)
        gate.wait(10)
        return [1, 2, 3]

    results: list[Any] = []

    def caller() -> None:
        results.append(work("shared"))

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    while not calls:
        threading.Event().wait(0.001)
    gate.set()
    for thread in threads:
        thread.join(20)
    assert calls == ["shared"]
    assert results == [[1, 2, 3]] * 8


def test_a_call_outliving_its_lease_raises_and_the_second_callers_result_is_kept(
    events: list[Any],
) -> None:
    clock = FakeClock()
    # One namespace, as two workers running the same function would have.
    policy = resilient.idempotent(
        store=MemoryStore(), key=lambda x: x, lock_timeout=10, clock=clock, namespace="charge"
    )

    def second(x: str) -> str:
        return "second"

    def first(x: str) -> str:
        clock.advance(11)  # the lease runs out while the call runs...
        assert policy.call(second, x) == "second"  # ...so the next caller runs it
        return "first"

    with pytest.raises(IdempotencyLeaseLost) as caught:
        policy.call(first, "k")
    assert caught.value.key == "k"
    assert policy.call(lambda x: "never runs", "k") == "second"
    assert [e for e in events if isinstance(e, IdempotencyLeaseLostEvent)] == [
        IdempotencyLeaseLostEvent("idempotency", "charge", "k")
    ]


def test_redis_lease_lost_keeps_the_second_callers_result(redis_client: Any) -> None:
    store = RedisStore(redis_client)
    policy = resilient.idempotent(store=store, key=lambda x: x, lock_timeout=0.2, namespace="n")
    second_done = threading.Event()
    first_started = threading.Event()
    outcome: list[Any] = []

    def first_body(x: str) -> str:
        first_started.set()
        assert second_done.wait(10)
        return "first"

    def run_first() -> None:
        try:
            outcome.append(policy.call(first_body, "k"))
        except IdempotencyLeaseLost as error:
            outcome.append(error)

    worker = threading.Thread(target=run_first)
    worker.start()
    assert first_started.wait(10)
    # Poll until the first call's lease has run out and the second caller may run.
    second: Any = None
    for _ in range(200):
        try:
            second = resilient.idempotent(
                store=store, key=lambda x: x, lock_timeout=5, wait=0, namespace="n"
            ).call(lambda x: "second", "k")
            break
        except IdempotencyInProgress:
            threading.Event().wait(0.05)
    second_done.set()
    worker.join(10)
    assert second == "second"
    assert isinstance(outcome[0], IdempotencyLeaseLost), outcome
    assert policy.call(lambda x: "third", "k") == "second"


def test_replays_emit_an_event(store: Any, events: list[Any]) -> None:
    @resilient.idempotent(store=store, key=lambda x: x, namespace="ns")
    def fn(x: str) -> str:
        return x

    fn("k")
    assert not [e for e in events if isinstance(e, IdempotentReplay)]
    fn("k")
    assert [e for e in events if isinstance(e, IdempotentReplay)] == [
        IdempotentReplay("idempotency", "ns", "k")
    ]


def test_an_unreachable_store_fails_closed_whatever_on_error_says() -> None:
    import redis

    client = redis.Redis(port=1, socket_connect_timeout=0.5, socket_timeout=0.5)
    calls = []
    for on_error in ("allow", "deny", "raise"):

        @resilient.idempotent(store=RedisStore(client, on_error=on_error), key=lambda x: x)
        def fn(x: str) -> str:
            calls.append(x)
            return x

        with pytest.raises(StoreUnavailable):
            fn("k")
    assert calls == []


def test_the_memory_store_counts_bounds_and_expires_entries() -> None:
    clock = FakeClock()
    store = MemoryStore(max_keys=3)
    policy = resilient.idempotent(store=store, key=lambda x: x, ttl=10, clock=clock)
    fn = policy(lambda x: x)
    for key in "abcd":
        fn(key)
    assert len(store) == 3
    clock.advance(11)
    assert len(store) == 0


def test_arguments_are_checked() -> None:
    store = MemoryStore()
    with pytest.raises(TypeError, match="key"):
        resilient.idempotent(store=store, key="k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl"):
        resilient.idempotent(store=store, key=str, ttl=0)
    with pytest.raises(ValueError, match="lock_timeout"):
        resilient.idempotent(store=store, key=str, lock_timeout=-1)
    with pytest.raises(ValueError, match="wait"):
        resilient.idempotent(store=store, key=str, wait=-1)
    with pytest.raises(TypeError, match="store"):
        resilient.idempotent(store=object(), key=str)  # type: ignore[arg-type]
    fn = resilient.idempotent(store=store, key=lambda x: x)(lambda x: x)
    with pytest.raises(TypeError, match="key must return a str"):
        fn(1)


# -- async -----------------------------------------------------------------------------------


async def test_async_functions_run_once_and_replay(store: Any) -> None:
    calls = []

    @resilient.idempotent(store=store, key=lambda order_id, amount: order_id)
    async def charge(order_id: str, amount: int) -> Receipt:
        calls.append(order_id)
        await anyio.sleep(0)
        return Receipt(order_id, amount)

    assert await charge("a", 5) == await charge("a", amount=5) == Receipt("a", 5)
    assert calls == ["a"]
    with pytest.raises(IdempotencyKeyReused):
        await charge("a", 6)


async def test_async_concurrent_duplicates_wait_for_the_first_result(store: Any) -> None:
    calls = []
    gate = anyio.Event()

    @resilient.idempotent(store=store, key=lambda x: x)
    async def work(x: str) -> dict[str, int]:
        calls.append(x)
        await gate.wait()
        return {"n": 1}

    results: list[Any] = []

    async def caller() -> None:
        results.append(await work("shared"))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(caller)
        while not calls:
            await anyio.sleep(0.001)
        await anyio.sleep(0.02)
        gate.set()
    assert calls == ["shared"]
    assert results == [{"n": 1}] * 20


async def test_async_failures_and_cancellation_release_the_key(store: Any) -> None:
    attempts = []

    @resilient.idempotent(store=store, key=lambda x: x)
    async def work(x: str) -> str:
        attempts.append(x)
        if len(attempts) == 1:
            raise ValueError("boom")
        if len(attempts) == 2:
            await anyio.sleep(30)  # cancelled below
        return "done"

    with pytest.raises(ValueError):
        await work("k")
    with anyio.move_on_after(0.05) as scope:
        await work("k")
    assert scope.cancelled_caught
    assert await work("k") == "done"
    assert await work("k") == "done"
    assert len(attempts) == 3


async def test_async_wait_zero_raises_in_progress(store: Any) -> None:
    started = anyio.Event()
    gate = anyio.Event()

    @resilient.idempotent(store=store, key=lambda x: x, wait=0, lock_timeout=20)
    async def work(x: str) -> str:
        started.set()
        await gate.wait()
        return x

    async with anyio.create_task_group() as tg:
        tg.start_soon(work, "k")
        await started.wait()
        with pytest.raises(IdempotencyInProgress) as caught:
            await work("k")
        assert 0 < caught.value.retry_after <= 20
        gate.set()
    assert await work("k") == "k"


async def test_async_with_an_asyncio_redis_client(async_redis_client: Any) -> None:
    store = RedisStore(async_redis_client)
    calls = []

    @resilient.idempotent(store=store, key=lambda x: x)
    async def work(x: str) -> str:
        calls.append(x)
        return x * 2

    assert await work("ab") == await work("ab") == "abab"
    assert calls == ["ab"]


async def test_async_lease_lost_on_a_fake_clock(anyio_backend: str) -> None:
    clock = FakeClock()
    policy = resilient.idempotent(
        store=MemoryStore(), key=lambda x: x, lock_timeout=5, clock=clock, namespace="n"
    )

    async def slow(x: str) -> str:
        clock.advance(6)
        assert await policy.acall(fast, x) == "fast"
        return "slow"

    async def fast(x: str) -> str:
        return "fast"

    with pytest.raises(IdempotencyLeaseLost):
        await policy.acall(slow, "k")
    assert await policy.acall(fast, "k") == "fast"


async def test_an_unreachable_store_fails_closed_in_async_code(anyio_backend: str) -> None:
    import redis

    client = redis.Redis(port=1, socket_connect_timeout=0.5, socket_timeout=0.5)
    calls = []

    @resilient.idempotent(store=RedisStore(client), key=lambda x: x)
    async def fn(x: str) -> str:
        calls.append(x)
        return x

    with pytest.raises(StoreUnavailable):
        await fn("k")
    assert calls == []


@pytest.mark.parametrize("client_kind", ["sync", "asyncio"])
async def test_a_call_cancelled_while_redis_is_slow_never_leaves_its_key_claimed(
    redis_url: str, anyio_backend: str, client_kind: str
) -> None:
    """Cancelled while its claim waits on a paused Redis, the call either holds the key and
    releases it, or never claimed it: a retry runs at once, not after the 60 s lease."""
    import redis
    import redis.asyncio

    if client_kind == "asyncio" and anyio_backend != "asyncio":
        pytest.skip("redis.asyncio runs on asyncio only")
    client: Any = (
        redis.Redis.from_url(redis_url)
        if client_kind == "sync"
        else redis.asyncio.Redis.from_url(redis_url)
    )
    admin = redis.Redis.from_url(redis_url)
    calls = []

    @resilient.idempotent(store=RedisStore(client), key=lambda x: x, lock_timeout=60)
    async def work(x: str) -> str:
        await anyio.sleep(0)  # the pending cancellation strikes here, after the claim
        calls.append(x)
        return x

    assert await work("warm-up") == "warm-up"  # scripts loaded, connection open
    admin.client_pause(300)  # every command waits about 0.3 s: the claim is slow
    with anyio.move_on_after(0.05) as scope:
        await work("k")
    assert scope.cancelled_caught
    assert calls == ["warm-up"]
    assert await work("k") == "k"  # released, not left claimed for the 60 s lease
    assert calls == ["warm-up", "k"]
    admin.close()
    if client_kind == "sync":
        client.close()
    else:
        await client.aclose()


class _RepliesAfterACheckpoint(RedisStore):
    """A RedisStore whose replies reach the caller through a checkpoint, 0.2 s after Redis
    ran the step (as a reply read from a slow socket would): a cancellation can strike
    between a claim made in Redis and its caller learning of it."""

    async def _aeval(self, script: Any, numkeys: int, *keys_and_args: str | int) -> Any:
        reply = await super()._aeval(script, numkeys, *keys_and_args)
        await anyio.sleep(0.2)
        return reply


@pytest.mark.parametrize("client_kind", ["sync", "asyncio"])
async def test_a_cancellation_that_strikes_before_the_claims_reply_still_releases_the_key(
    redis_url: str, anyio_backend: str, client_kind: str
) -> None:
    """The claim is shielded: cancelled after Redis has claimed the key but before the reply
    is back, the call still learns that it holds the key, and releases it; without the shield
    the key would stay claimed for the whole 60 s lease, and the retry below would raise
    IdempotencyInProgress."""
    import redis
    import redis.asyncio

    if client_kind == "asyncio" and anyio_backend != "asyncio":
        pytest.skip("redis.asyncio runs on asyncio only")
    client: Any = (
        redis.Redis.from_url(redis_url)
        if client_kind == "sync"
        else redis.asyncio.Redis.from_url(redis_url)
    )
    admin = redis.Redis.from_url(redis_url)
    calls = []

    @resilient.idempotent(
        store=_RepliesAfterACheckpoint(client), key=lambda x: x, lock_timeout=60, wait=0
    )
    async def work(x: str) -> str:
        await anyio.sleep(0)  # the pending cancellation strikes here, after the claim
        calls.append(x)
        return x

    with anyio.move_on_after(0.05) as scope:  # while the claim's reply is on its way
        await work("k")
    assert scope.cancelled_caught
    assert calls == []
    assert admin.keys("*") == []  # claimed in Redis, then released
    assert await work("k") == "k"
    assert calls == ["k"]
    admin.close()
    if client_kind == "sync":
        client.close()
    else:
        await client.aclose()


@pytest.mark.parametrize("client_kind", ["sync", "asyncio"])
async def test_the_release_after_a_failure_completes_even_in_a_cancelled_scope(
    redis_url: str, anyio_backend: str, client_kind: str
) -> None:
    """The release is shielded: a call that fails inside an already cancelled scope still
    releases its key (and its own exception propagates)."""
    import redis
    import redis.asyncio

    if client_kind == "asyncio" and anyio_backend != "asyncio":
        pytest.skip("redis.asyncio runs on asyncio only")
    client: Any = (
        redis.Redis.from_url(redis_url)
        if client_kind == "sync"
        else redis.asyncio.Redis.from_url(redis_url)
    )
    scopes: list[anyio.CancelScope] = []
    attempts = []

    @resilient.idempotent(store=RedisStore(client), key=lambda x: x, lock_timeout=60, wait=0)
    async def work(x: str) -> str:
        attempts.append(x)
        if len(attempts) == 1:
            scopes[0].cancel()
            raise ValueError("boom")
        return x

    with anyio.CancelScope() as scope:
        scopes.append(scope)
        with pytest.raises(ValueError, match="boom"):
            await work("k")
    assert await work("k") == "k"  # released: no IdempotencyInProgress
    if client_kind == "sync":
        client.close()
    else:
        await client.aclose()


def order_key(order_id: str, amount: int) -> str:
    return order_id


@pytest.mark.parametrize("with_redis", [False, True])
def test_load_policies_builds_an_idempotency_section(
    request: pytest.FixtureRequest, with_redis: bool
) -> None:
    from resilient.config import PIPELINE_ORDER, load_policies

    assert PIPELINE_ORDER.index("idempotency") < PIPELINE_ORDER.index("retry")
    extra = {"redis_url": request.getfixturevalue("redis_url")} if with_redis else {}
    section = {"key": "tests.test_idempotency:order_key", "ttl": 60, "lock_timeout": 5, "wait": 0}
    pipeline = load_policies(
        {"payments": {"retry": {"attempts": 2}, "idempotency": {**section, **extra}}}
    )["payments"]
    policy = pipeline.policies[0]
    assert isinstance(policy, resilient._idempotency.Idempotent)
    assert (policy.ttl, policy.lock_timeout, policy.wait) == (60.0, 5.0, 0.0)
    assert isinstance(policy.store, RedisStore if with_redis else MemoryStore)
    calls = []

    def charge(order_id: str, amount: int) -> int:
        calls.append(order_id)
        return amount

    assert pipeline.call(charge, "a", 5) == pipeline.call(charge, "a", amount=5) == 5
    assert calls == ["a"]


def test_an_idempotency_section_with_a_bad_key_names_the_field() -> None:
    from resilient.config import load_policies

    with pytest.raises(pydantic.ValidationError) as info:
        load_policies({"payments": {"idempotency": {"key": "no.such.module:fn"}}})
    assert info.value.errors()[0]["loc"] == ("payments", "idempotency", "key")
    with pytest.raises(pydantic.ValidationError) as info:
        load_policies(
            {"payments": {"idempotency": {"key": "tests.test_idempotency:order_key", "ttl": 0}}}
        )
    assert info.value.errors()[0]["loc"] == ("payments", "idempotency", "ttl")


async def test_inside_an_async_pipeline_the_key_sees_the_functions_own_arguments(
    anyio_backend: str,
) -> None:
    idem = resilient.idempotent(store=MemoryStore(), key=lambda order_id, amount: order_id)
    calls = []

    @resilient.Pipeline(idem, resilient.retry(attempts=2), resilient.timeout(5))
    async def charge(order_id: str, amount: int) -> int:
        calls.append(order_id)
        return amount

    assert await charge("a", 5) == await charge("a", amount=5) == 5
    with pytest.raises(IdempotencyKeyReused):
        await charge("a", 6)
    assert calls == ["a"]
