"""DeadLetterQueue behaviour, the same on a MemoryStore and on a RedisStore (real redis-server)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import anyio
import pytest

from resilient import DeadLetterQueue, retry
from resilient._dead_letter import DeadLetter
from resilient._events import DeadLettered, Event
from resilient.instrumentation import subscribe, unsubscribe
from resilient.stores import MemoryStore, RedisStore
from resilient.testing import no_waiting

from ._dead_letters import POISON, OrderPlaced, buggy, fixed, renamed


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Each behaviour test runs on a MemoryStore and on a RedisStore with a sync client."""
    if request.param == "memory":
        yield MemoryStore()
        return
    url = request.getfixturevalue("redis_url")
    store = RedisStore.from_url(url, socket_timeout=2.0)
    yield store
    store.client.close()


@pytest.fixture
def events() -> Iterator[list[Event]]:
    received: list[Event] = []
    subscribe(received.append)
    yield received
    unsubscribe(received.append)


def orders() -> list[OrderPlaced]:
    return [OrderPlaced(order_id=i, amount=i * 1.5) for i in range(100)]


def test_poison_messages_are_parked_and_replayed_after_the_fix(store: Any) -> None:
    dlq = DeadLetterQueue("orders", store=store)
    handle = dlq.capture()(retry(attempts=3)(buggy))
    with no_waiting():
        results = [handle(message) for message in orders()]
    assert sum(1 for r in results if r is not None) == 93
    assert results.count(None) == 7
    assert dlq.count() == 7

    parked = dlq.list(100)
    assert sorted(entry.args[0]["order_id"] for entry in parked) == sorted(POISON)
    for entry in parked:
        order_id = entry.args[0]["order_id"]
        assert entry.error_type == "builtins.ValueError"
        assert entry.error == f"cannot process order {order_id}"
        assert "ValueError: cannot process order" in entry.traceback
        assert entry.attempts == 1
        assert entry.function.endswith(":buggy")
        assert entry.args == [{"order_id": order_id, "amount": order_id * 1.5}]
        assert abs(entry.time - datetime.now(timezone.utc).timestamp()) < 3600

    still_buggy = dlq.replay()  # the captured function by default: fails again
    assert still_buggy.replayed == 0
    assert len(still_buggy.failed) == 7
    assert {entry.attempts for entry in dlq.list(100)} == {2}

    replayed: list[str] = []

    def deployed_fix(message: OrderPlaced) -> None:
        replayed.append(fixed(message))

    result = dlq.replay(handler=deployed_fix)
    assert result.replayed == 7
    assert result.failed == ()
    assert result.invalid == ()
    assert sorted(replayed) == sorted(f"processed {i}" for i in POISON)
    assert dlq.count() == 0


def test_a_failed_replay_keeps_the_entry_with_one_more_attempt_and_the_new_error(
    store: Any,
) -> None:
    dlq = DeadLetterQueue("orders", store=store)
    dlq.capture()(buggy)(OrderPlaced(order_id=3, amount=1.0))

    def still_broken(message: OrderPlaced) -> None:
        raise KeyError("still broken")

    result = dlq.replay(still_broken)
    assert [entry.attempts for entry in result.failed] == [2]
    (entry,) = dlq.list()
    assert entry.attempts == 2
    assert entry.error_type == "builtins.KeyError"
    assert "still broken" in entry.error
    assert entry.args == [{"order_id": 3, "amount": 1.0}]  # the payload is unchanged
    dlq.replay(still_broken)
    assert dlq.list()[0].attempts == 3


def test_a_payload_that_no_longer_validates_stays_parked_and_is_reported(store: Any) -> None:
    dlq = DeadLetterQueue("orders", store=store)
    handle = dlq.capture()(buggy)
    handle(OrderPlaced(order_id=3, amount=1.0))
    handle(OrderPlaced(order_id=17, amount=2.0))
    outcomes: list[tuple[str, str]] = []
    result = dlq.replay(
        renamed, progress=lambda entry, outcome: outcomes.append((entry.id, outcome))
    )
    assert result.replayed == 0
    assert len(result.invalid) == 2
    assert all("no longer validates" in entry.error for entry in result.invalid)
    assert all(entry.error_type.endswith("ValidationError") for entry in result.invalid)
    assert [outcome for _, outcome in outcomes] == ["invalid", "invalid"]
    assert dlq.count() == 2
    assert dlq.replay(fixed).replayed == 2


def test_replay_limit_handles_at_most_that_many(store: Any) -> None:
    dlq = DeadLetterQueue("orders", store=store)
    handle = dlq.capture()(buggy)
    for order_id in sorted(POISON):
        handle(OrderPlaced(order_id=order_id, amount=1.0))
    assert dlq.replay(fixed, limit=3).replayed == 3
    assert dlq.count() == 4
    assert dlq.replay(fixed).replayed == 4


def test_success_path_returns_the_result_and_parks_nothing(store: Any, events: list[Event]) -> None:
    dlq = DeadLetterQueue("orders", store=store)
    assert dlq.capture()(buggy)(OrderPlaced(order_id=1, amount=1.0)) == "processed 1"
    assert dlq.count() == 0
    assert events == []


def test_dead_lettered_events_carry_the_entry_id(store: Any, events: list[Event]) -> None:
    dlq = DeadLetterQueue("orders", store=store)
    dlq.capture()(buggy)(OrderPlaced(order_id=3, amount=1.0))
    (event,) = [e for e in events if isinstance(e, DeadLettered)]
    assert (event.policy, event.name) == ("dead_letter", "orders")
    assert event.entry_id == dlq.list()[0].id
    assert isinstance(event.exception, ValueError)


def test_reraise_parks_then_raises_the_original(store: Any) -> None:
    dlq = DeadLetterQueue("orders", store=store)
    with pytest.raises(ValueError, match="cannot process order 3"):
        dlq.capture(reraise=True)(buggy)(OrderPlaced(order_id=3, amount=1.0))
    assert dlq.count() == 1


def test_only_matching_exceptions_are_parked(store: Any) -> None:
    dlq = DeadLetterQueue("orders", store=store)
    handle = dlq.capture(on=KeyError)(buggy)
    with pytest.raises(ValueError):
        handle(OrderPlaced(order_id=3, amount=1.0))
    assert dlq.count() == 0


def test_a_full_queue_refuses_the_message_and_the_original_exception_propagates(
    store: Any,
) -> None:
    dlq = DeadLetterQueue("orders", store=store, max_length=2)
    handle = dlq.capture()(buggy)
    handle(OrderPlaced(order_id=3, amount=1.0))
    handle(OrderPlaced(order_id=17, amount=1.0))
    with pytest.raises(ValueError, match="cannot process order 29") as caught:
        handle(OrderPlaced(order_id=29, amount=1.0))
    notes = getattr(caught.value, "__notes__", [])
    assert any("queue is full (max_length=2)" in note for note in notes)
    assert dlq.count() == 2  # the oldest entries were not trimmed
    assert sorted(e.args[0]["order_id"] for e in dlq.list()) == [3, 17]


def test_arguments_that_do_not_encode_are_never_swallowed(store: Any) -> None:
    dlq = DeadLetterQueue("orders", store=store)

    @dlq.capture()
    def handle(connection: Any) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom") as caught:
        handle(object())
    assert any("not parked" in note for note in getattr(caught.value, "__notes__", []))
    assert dlq.count() == 0


def test_keyword_and_variadic_arguments_round_trip(store: Any) -> None:
    dlq = DeadLetterQueue("orders", store=store)
    seen: list[Any] = []

    @dlq.capture()
    def handle(order_id: int, *tags: str, when: datetime, **extra: int) -> None:
        seen.append((order_id, tags, when, extra))
        if len(seen) == 1:
            raise ValueError("first time fails")

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    handle(7, "a", "b", when=when, retries=2)
    (entry,) = dlq.list()
    assert entry.args == [7, "a", "b"]
    assert entry.kwargs == {"when": "2026-01-02T03:04:05Z", "retries": 2}
    assert dlq.replay().replayed == 1  # the captured function itself, validated again
    assert seen[1] == (7, ("a", "b"), when, {"retries": 2})


def test_cancellation_and_interrupts_are_never_parked(store: Any) -> None:
    dlq = DeadLetterQueue("orders", store=store)

    @dlq.capture(on=BaseException)
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert dlq.count() == 0


def test_replay_without_a_handler_for_the_function_reports_it(store: Any) -> None:
    DeadLetterQueue("orders", store=store).capture()(buggy)(OrderPlaced(order_id=3, amount=1))
    other = DeadLetterQueue("orders", store=store)  # another process: nothing captured here
    assert other.count() == 1
    result = other.replay()
    assert len(result.invalid) == 1
    assert "no handler" in result.invalid[0].error
    assert other.count() == 1


def test_purge_deletes_everything(store: Any) -> None:
    dlq = DeadLetterQueue("orders", store=store)
    handle = dlq.capture()(buggy)
    for order_id in (3, 17, 29):
        handle(OrderPlaced(order_id=order_id, amount=1.0))
    assert dlq.purge() == 3
    assert dlq.count() == 0
    assert dlq.list() == []
    handle(OrderPlaced(order_id=41, amount=1.0))  # the queue works after a purge
    assert dlq.replay(fixed).replayed == 1


def test_queues_of_different_names_are_separate(store: Any) -> None:
    first = DeadLetterQueue("a", store=store)
    second = DeadLetterQueue("b", store=store)
    first.capture()(buggy)(OrderPlaced(order_id=3, amount=1.0))
    assert (first.count(), second.count()) == (1, 0)


async def test_async_capture_and_areplay(store: Any, events: list[Event]) -> None:
    dlq = DeadLetterQueue("orders", store=store)

    @dlq.capture()
    async def handle(message: OrderPlaced) -> str:
        await anyio.sleep(0)
        return buggy(message)

    results = [await handle(message) for message in orders()[:30]]
    assert results.count(None) == 3  # orders 3, 17 and 29
    assert await dlq.acount() == 3
    assert len(await dlq.alist(10)) == 3
    assert len([e for e in events if isinstance(e, DeadLettered)]) == 3

    failed = await dlq.areplay()  # the captured coroutine function, still buggy
    assert len(failed.failed) == 3

    async def afix(message: OrderPlaced) -> None:
        await anyio.sleep(0)

    assert (await dlq.areplay(afix)).replayed == 3
    assert await dlq.acount() == 0
    await handle(OrderPlaced(order_id=3, amount=1.0))
    assert await dlq.apurge() == 1


def test_sync_replay_refuses_an_async_handler(store: Any) -> None:
    dlq = DeadLetterQueue("orders", store=store)

    async def afix(message: OrderPlaced) -> None:
        pass

    with pytest.raises(TypeError, match="areplay"):
        dlq.replay(afix)


def test_decorated_function_keeps_its_metadata(store: Any) -> None:
    dlq = DeadLetterQueue("orders", store=store)
    handle = dlq.capture()(buggy)
    assert handle.__name__ == "buggy"
    assert handle.__wrapped__ is buggy  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": ""}, ValueError, "name"),
        ({"name": 3}, TypeError, "name"),
        ({"name": "q", "max_length": 0}, ValueError, "max_length"),
        ({"name": "q", "max_length": True}, TypeError, "max_length"),
        ({"name": "q", "claim_after": 0}, ValueError, "claim_after"),
        ({"name": "q", "store": object()}, TypeError, "MemoryStore or RedisStore"),
    ],
)
def test_bad_arguments_are_named(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    kwargs.setdefault("store", MemoryStore())
    with pytest.raises(error, match=match):
        DeadLetterQueue(**kwargs)


def test_list_and_replay_check_their_limits() -> None:
    dlq = DeadLetterQueue("q", store=MemoryStore())
    with pytest.raises(ValueError, match="limit"):
        dlq.list(0)
    with pytest.raises(ValueError, match="limit"):
        dlq.replay(fixed, limit=0)
    with pytest.raises(TypeError, match="handler"):
        dlq.replay(handler=3)  # type: ignore[arg-type]


def test_entries_are_dead_letter_records() -> None:
    dlq = DeadLetterQueue("q", store=MemoryStore())
    dlq.capture()(buggy)(OrderPlaced(order_id=3, amount=1.0))
    (entry,) = dlq.list()
    assert isinstance(entry, DeadLetter)
    assert "payload" not in repr(entry)


def test_an_interrupted_replay_loses_nothing(store: Any) -> None:
    dlq = DeadLetterQueue("orders", store=store, claim_after=0.001)
    handle = dlq.capture()(buggy)
    for order_id in (3, 17, 29):
        handle(OrderPlaced(order_id=order_id, amount=1.0))

    def interrupted(message: OrderPlaced) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dlq.replay(interrupted)
    assert dlq.count() == 3
    time.sleep(0.01)  # Redis: the interrupted run's entries are idle longer than claim_after
    assert dlq.replay(fixed).replayed == 3
    assert dlq.count() == 0


def test_capture_works_above_staticmethod() -> None:
    dlq = DeadLetterQueue("q", store=MemoryStore())

    class Consumer:
        @dlq.capture()
        @staticmethod
        def handle(message: OrderPlaced) -> str:
            return buggy(message)

    assert Consumer().handle(OrderPlaced(order_id=1, amount=1.0)) == "processed 1"
    assert Consumer.handle(OrderPlaced(order_id=3, amount=1.0)) is None
    assert dlq.list()[0].args == [{"order_id": 3, "amount": 1.0}]
