from __future__ import annotations

import contextlib
import threading
import time

import anyio
import pytest

import resilient
from resilient import Bulkhead, BulkheadFullError
from resilient._events import CallRejected, Event, subscribe, unsubscribe
from resilient.testing import FakeClock


class Boom(Exception):
    pass


def test_rejects_beyond_max_concurrent_without_waiting() -> None:
    bulkhead = Bulkhead(2, name="db")
    with bulkhead, bulkhead:
        assert (bulkhead.in_use, bulkhead.available) == (2, 0)
        with pytest.raises(BulkheadFullError) as info, bulkhead:
            pass
        assert info.value.name == "db"
    assert (bulkhead.in_use, bulkhead.available, bulkhead.waiting) == (0, 2, 0)


def test_rejection_emits_an_event() -> None:
    events: list[Event] = []
    subscribe(events.append)
    try:
        bulkhead = Bulkhead(1, name="ev")
        with bulkhead, pytest.raises(BulkheadFullError):
            bulkhead.call(int)
    finally:
        unsubscribe(events.append)
    assert [(e.name, e.reason) for e in events if isinstance(e, CallRejected)] == [("ev", "full")]


def test_slot_is_released_when_the_call_raises() -> None:
    bulkhead = Bulkhead(1)

    @bulkhead
    def fail() -> None:
        raise Boom

    for _ in range(3):
        with pytest.raises(Boom):
            fail()
    assert bulkhead.in_use == 0


def test_waiters_are_served_in_fifo_order() -> None:
    bulkhead = Bulkhead(1, max_waiting=5, max_wait=5.0)
    order: list[int] = []
    bulkhead._acquire()
    threads = []
    for i in range(5):
        thread = threading.Thread(target=bulkhead.call, args=(order.append, i))
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 5
        while bulkhead.waiting < i + 1 and time.monotonic() < deadline:
            time.sleep(0.001)
    bulkhead._release()
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3, 4]
    assert bulkhead.in_use == 0


def test_waiting_gives_up_after_max_wait() -> None:
    bulkhead = Bulkhead(1, max_waiting=1, max_wait=0.02)
    with bulkhead:
        start = time.monotonic()
        with pytest.raises(BulkheadFullError):
            bulkhead.call(int)
        assert time.monotonic() - start < 2
    assert (bulkhead.in_use, bulkhead.waiting) == (0, 0)


def test_never_waits_past_the_deadline_in_scope() -> None:
    clock = FakeClock()
    bulkhead = Bulkhead(1, max_waiting=1, max_wait=100.0)
    from resilient._deadline import enter_deadline, exit_deadline

    with bulkhead:
        _, token = enter_deadline(1.0, clock)
        clock.advance(1.0)  # the deadline has passed: no waiting at all
        try:
            with pytest.raises(BulkheadFullError):
                bulkhead.call(int)
        finally:
            exit_deadline(token)
    assert bulkhead.waiting == 0


def test_max_waiting_bounds_the_queue() -> None:
    bulkhead = Bulkhead(1, max_waiting=1, max_wait=5.0)
    bulkhead._acquire()
    waiter = threading.Thread(target=bulkhead.call, args=(int,))
    waiter.start()
    deadline = time.monotonic() + 5
    while bulkhead.waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    with pytest.raises(BulkheadFullError):
        bulkhead.call(int)
    bulkhead._release()
    waiter.join(5)
    assert bulkhead.in_use == 0


def test_threads_never_exceed_max_concurrent_nor_lose_a_slot() -> None:
    bulkhead = Bulkhead(3, max_waiting=100, max_wait=5.0)
    lock = threading.Lock()
    current = peak = 0

    def work(i: int) -> None:
        nonlocal current, peak
        with lock:
            current += 1
            peak = max(peak, current)
        time.sleep(0.0005)
        with lock:
            current -= 1
        if i % 3 == 0:
            raise Boom

    def worker(n: int) -> None:
        for i in range(20):
            with contextlib.suppress(Boom):
                bulkhead.call(work, n + i)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert 1 <= peak <= 3
    assert (bulkhead.in_use, bulkhead.waiting, bulkhead.available) == (0, 0, 3)


async def test_tasks_never_exceed_max_concurrent_nor_lose_a_slot_when_cancelled() -> None:
    bulkhead = Bulkhead(4, max_waiting=200)
    current = peak = 0

    async def work(i: int) -> None:
        nonlocal current, peak
        current += 1
        peak = max(peak, current)
        try:
            await anyio.sleep(0.001)
            if i % 5 == 0:
                raise Boom
        finally:
            current -= 1

    async def worker(i: int) -> None:
        with contextlib.suppress(Boom):
            await bulkhead.acall(work, i)

    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(worker, i)
    assert peak == 4

    # cancel a group of tasks while some run and others wait
    with anyio.move_on_after(0.005):
        async with anyio.create_task_group() as tg:
            for i in range(1, 200):
                tg.start_soon(worker, i)
    assert (bulkhead.in_use, bulkhead.waiting) == (0, 0)
    async with bulkhead:
        assert bulkhead.in_use == 1


async def test_a_release_racing_with_a_cancelled_waiter_passes_the_slot_on() -> None:
    bulkhead = Bulkhead(1, max_waiting=2)
    await bulkhead._aacquire()
    got: list[str] = []

    async def second() -> None:
        async with bulkhead:
            got.append("second")

    async with anyio.create_task_group() as tg:
        tg.start_soon(bulkhead.acall, anyio.sleep_forever)  # the first waiter, cancelled below
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(second)
        await anyio.wait_all_tasks_blocked()
        assert bulkhead.waiting == 2
        # the release grants the first waiter its slot; it is cancelled before it can run
        bulkhead._release()
        tg.cancel_scope.cancel()
    async with bulkhead:
        pass
    assert (bulkhead.in_use, bulkhead.waiting) == (0, 0)


async def test_async_waiter_is_woken_by_a_release_from_another_thread() -> None:
    bulkhead = Bulkhead(1, max_waiting=1, max_wait=5.0)
    bulkhead._acquire()

    def release_later() -> None:
        time.sleep(0.02)
        bulkhead._release()

    thread = threading.Thread(target=release_later)
    thread.start()
    result = await bulkhead.acall(anyio.sleep, 0)
    thread.join(5)
    assert result is None
    assert bulkhead.in_use == 0


async def test_uncontended_async_acquire_awaits_nothing() -> None:
    bulkhead = Bulkhead(1)
    coroutine = bulkhead.__aenter__()
    with pytest.raises(StopIteration):
        coroutine.send(None)
    await bulkhead.__aexit__(None, None, None)
    assert bulkhead.in_use == 0


def test_one_limit_across_threads_and_an_event_loop() -> None:
    bulkhead = Bulkhead(2, max_waiting=100, max_wait=10.0)
    lock = threading.Lock()
    current = peak = 0

    def enter() -> None:
        nonlocal current, peak
        with lock:
            current += 1
            peak = max(peak, current)

    def leave() -> None:
        nonlocal current
        with lock:
            current -= 1

    def sync_work() -> None:
        enter()
        time.sleep(0.001)
        leave()

    async def async_work() -> None:
        enter()
        await anyio.sleep(0.001)
        leave()

    def threads() -> None:
        for _ in range(20):
            bulkhead.call(sync_work)

    async def tasks() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(bulkhead.acall, async_work)

    workers = [threading.Thread(target=threads) for _ in range(4)]
    workers.append(threading.Thread(target=anyio.run, args=(tasks,)))
    workers.append(threading.Thread(target=anyio.run, args=(tasks,), kwargs={"backend": "trio"}))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert peak == 2
    assert (bulkhead.in_use, bulkhead.waiting) == (0, 0)


@pytest.mark.parametrize(
    ("args", "kwargs", "argument"),
    [
        ((0,), {}, "max_concurrent"),
        ((1,), {"max_waiting": -1}, "max_waiting"),
        ((1,), {"max_wait": -1.0}, "max_wait"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(
    args: tuple, kwargs: dict, argument: str
) -> None:
    with pytest.raises(ValueError, match=argument):
        Bulkhead(*args, **kwargs)


def test_is_exported() -> None:
    assert resilient.Bulkhead is Bulkhead


@pytest.mark.parametrize("max_wait", [float("inf"), 1e12])
def test_a_thread_can_wait_without_a_bound(max_wait: float) -> None:
    bulkhead = Bulkhead(1, max_waiting=1, max_wait=max_wait)
    results: list[object] = []
    with bulkhead:
        waiter = threading.Thread(target=lambda: results.append(bulkhead.call(lambda: "in")))
        waiter.start()
        deadline = time.monotonic() + 10
        while bulkhead.waiting == 0 and waiter.is_alive() and time.monotonic() < deadline:
            time.sleep(0.001)
        assert bulkhead.waiting == 1
    waiter.join(10)
    assert results == ["in"]
