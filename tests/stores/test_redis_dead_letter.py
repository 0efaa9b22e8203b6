"""Dead letters in a Redis Stream: crashes, outages, claims and the stream's own rules."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resilient import DeadLetterQueue
from resilient._events import Event, StoreError
from resilient.instrumentation import subscribe, unsubscribe
from resilient.stores import RedisStore

from .._dead_letters import POISON, OrderPlaced, buggy
from .._redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent.parent
STREAM = "resilient:{orders:dlq}:stream"

REPLAYER = """
import sys, time
from resilient import DeadLetterQueue
from resilient.stores import RedisStore
from tests._dead_letters import OrderPlaced

url, log, ready = sys.argv[1:4]
dlq = DeadLetterQueue("orders", store=RedisStore.from_url(url, socket_timeout=2.0))
handled = 0


def handler(message: OrderPlaced) -> None:
    global handled
    if handled == 3:
        open(ready, "w").close()
        time.sleep(120)  # killed here, in the middle of the replay
    with open(log, "a") as file:
        file.write(f"{message.order_id}\\n")
    handled += 1


dlq.replay(handler)
"""


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisStore]:
    store = RedisStore.from_url(redis_url, socket_timeout=2.0)
    yield store
    store.client.close()


def park_poison(dlq: DeadLetterQueue) -> None:
    handle = dlq.capture()(buggy)
    results = [handle(OrderPlaced(order_id=i, amount=1.0)) for i in range(100)]
    assert results.count(None) == len(POISON)


def test_a_replaying_process_killed_midway_loses_nothing(
    store: RedisStore, redis_url: str, tmp_path: Path
) -> None:
    dlq = DeadLetterQueue("orders", store=store)
    park_poison(dlq)
    log, ready = tmp_path / "handled.log", tmp_path / "ready"
    process = subprocess.Popen(
        [sys.executable, "-c", REPLAYER, redis_url, str(log), str(ready)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.exists(), "the replaying process did not get going"
    finally:
        process.kill()  # SIGKILL: no cleanup of any kind
        process.wait(timeout=30)
    first = log.read_text().split()
    assert len(first) == 3
    assert dlq.count() == len(POISON) - 3  # the handled ones are gone, the rest are kept

    # A live-looking run's entries are not taken over before claim_after (default 30 s).
    assert dlq.replay(lambda message: None).replayed == 0
    assert dlq.count() == len(POISON) - 3

    rerun: list[int] = []

    def handler(message: OrderPlaced) -> None:
        rerun.append(message.order_id)

    again = DeadLetterQueue("orders", store=store, claim_after=0.001)
    time.sleep(0.01)  # the killed run's entries have been idle for longer than claim_after
    assert again.replay(handler).replayed == len(POISON) - 3
    assert sorted([*map(int, first), *rerun]) == sorted(POISON)
    assert again.count() == 0


def test_redis_down_while_capturing_propagates_the_original_exception(
    redis_server: RedisServer, redis_url: str
) -> None:
    store = RedisStore.from_url(redis_url, socket_timeout=0.25, on_error="allow")
    dlq = DeadLetterQueue("orders", store=store)
    handle = dlq.capture()(buggy)
    events: list[Event] = []
    subscribe(events.append)
    redis_server.stop()
    try:
        with pytest.raises(ValueError, match="cannot process order 3") as caught:
            handle(OrderPlaced(order_id=3, amount=1.0))
    finally:
        unsubscribe(events.append)
        redis_server.start()
        store.client.close()
    notes = getattr(caught.value, "__notes__", [])
    assert any("not parked in the dead-letter queue 'orders'" in note for note in notes)
    assert any("redis failed" in note for note in notes)
    (event,) = [e for e in events if isinstance(e, StoreError)]
    assert (event.policy, event.name, event.action) == ("dead_letter", "orders", "raise")


async def test_redis_down_while_capturing_async_propagates_the_original_exception(
    redis_server: RedisServer, redis_url: str
) -> None:
    store = RedisStore.from_url(redis_url, socket_timeout=0.25)
    dlq = DeadLetterQueue("orders", store=store)

    @dlq.capture()
    async def handle(message: OrderPlaced) -> str:
        return buggy(message)

    redis_server.stop()
    try:
        with pytest.raises(ValueError, match="cannot process order 3"):
            await handle(OrderPlaced(order_id=3, amount=1.0))
    finally:
        redis_server.start()
        store.client.close()


def test_dead_letters_have_no_ttl_and_the_stream_is_never_trimmed(
    store: RedisStore, redis_client: Any
) -> None:
    dlq = DeadLetterQueue("orders", store=store, max_length=5)
    handle = dlq.capture()(buggy)
    for order_id in sorted(POISON)[:5]:
        handle(OrderPlaced(order_id=order_id, amount=1.0))
    with pytest.raises(ValueError):
        handle(OrderPlaced(order_id=sorted(POISON)[5], amount=1.0))
    assert redis_client.xlen(STREAM) == 5
    assert redis_client.ttl(STREAM) == -1

    def broken(message: OrderPlaced) -> None:
        raise RuntimeError("still failing")

    dlq.replay(broken)
    assert redis_client.ttl("resilient:{orders:dlq}:failures") == -1


def test_the_consumer_group_is_made_again_after_a_flush(
    store: RedisStore, redis_client: Any
) -> None:
    dlq = DeadLetterQueue("orders", store=store)
    handle = dlq.capture()(buggy)
    handle(OrderPlaced(order_id=3, amount=1.0))
    assert dlq.replay(lambda message: None).replayed == 1
    redis_client.flushall()  # the stream and its group are gone
    handle(OrderPlaced(order_id=17, amount=1.0))
    assert dlq.replay(lambda message: None).replayed == 1
    assert dlq.count() == 0


def test_entries_parked_before_the_group_existed_are_replayed(
    store: RedisStore, redis_client: Any
) -> None:
    dlq = DeadLetterQueue("orders", store=store)
    park_poison(dlq)
    assert redis_client.exists(STREAM) == 1
    assert redis_client.xinfo_groups(STREAM) == []  # no replay yet: no group
    assert dlq.replay(lambda message: None).replayed == len(POISON)


def test_a_failed_entry_is_handled_once_per_replay_even_when_claimable(
    store: RedisStore,
) -> None:
    dlq = DeadLetterQueue("orders", store=store, claim_after=0.001)
    park_poison(dlq)
    calls: list[int] = []

    def broken(message: OrderPlaced) -> None:
        calls.append(message.order_id)
        raise RuntimeError("still broken")

    result = dlq.replay(broken)
    assert sorted(calls) == sorted(POISON)
    assert len(result.failed) == len(POISON)
    time.sleep(0.01)
    calls.clear()
    dlq.replay(broken)
    assert sorted(calls) == sorted(POISON)
    assert {entry.attempts for entry in dlq.list()} == {3}


def test_an_interrupted_replay_leaves_its_entries_for_a_later_one(store: RedisStore) -> None:
    dlq = DeadLetterQueue("orders", store=store, claim_after=0.001)
    park_poison(dlq)

    def interrupted(message: OrderPlaced) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dlq.replay(interrupted)
    assert dlq.count() == len(POISON)
    time.sleep(0.01)
    assert dlq.replay(lambda message: None).replayed == len(POISON)


async def test_an_asyncio_client_captures_and_replays(async_redis_client: Any) -> None:
    dlq = DeadLetterQueue("orders", store=RedisStore(async_redis_client))

    @dlq.capture()
    async def handle(message: OrderPlaced) -> str:
        return buggy(message)

    for order_id in range(30):
        await handle(OrderPlaced(order_id=order_id, amount=1.0))
    assert await dlq.acount() == 3

    async def fixed(message: OrderPlaced) -> None:
        pass

    assert (await dlq.areplay(fixed)).replayed == 3
    assert await dlq.acount() == 0


def test_a_sync_capture_on_an_asyncio_client_is_never_swallowed(redis_url: str) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    dlq = DeadLetterQueue("orders", store=RedisStore(client))
    with pytest.raises(ValueError, match="cannot process order 3") as caught:
        dlq.capture()(buggy)(OrderPlaced(order_id=3, amount=1.0))
    assert any("redis.asyncio" in note for note in getattr(caught.value, "__notes__", []))
