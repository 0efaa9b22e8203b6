from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest

import resilient
from resilient import DeadlineExceeded, Pipeline, Timeout, current_deadline, remaining, timeout
from resilient.instrumentation import DeadlineExceededEvent, Event, subscribe, unsubscribe
from resilient.testing import FakeClock


@pytest.fixture
def events() -> Iterator[list[Event]]:
    seen: list[Event] = []
    subscribe(seen.append)
    yield seen
    unsubscribe(seen.append)


# -- sync: a cooperative deadline ----------------------------------------------------------------


def test_timeout_scopes_a_deadline_on_its_clock() -> None:
    clock = FakeClock(100.0)
    assert remaining() is None
    with timeout(2.0, clock=clock) as deadline:
        assert current_deadline() == 102.0 == deadline.at
        clock.advance(0.5)
        assert remaining() == 1.5
    assert remaining() is None
    assert current_deadline() is None


def test_nested_deadlines_earliest_wins() -> None:
    clock = FakeClock()
    with timeout(1.0, clock=clock):
        with timeout(10.0, clock=clock):
            assert remaining() == 1.0
        with timeout(0.25, clock=clock):
            assert remaining() == 0.25
        assert remaining() == 1.0


def test_nested_deadlines_on_different_clocks_compare_time_left() -> None:
    with timeout(0.5, clock=FakeClock(1000.0)), timeout(60.0):
        left = remaining()
        assert left is not None
        assert left <= 0.5
    with timeout(60.0), timeout(0.5, clock=FakeClock(1000.0)):
        assert remaining() == 0.5


def test_entering_after_the_deadline_passed_raises(events: list[Event]) -> None:
    clock = FakeClock()
    with timeout(1.0, clock=clock, name="outer"):
        clock.advance(1.0)
        with pytest.raises(DeadlineExceeded) as info, timeout(5.0, clock=clock):
            pytest.fail("the block must not run")
    assert info.value.timeout == 1.0
    assert isinstance(info.value, TimeoutError)
    assert [(type(e), e.policy, e.name) for e in events] == [
        (DeadlineExceededEvent, "timeout", "timeout")
    ]


def test_sync_block_that_overruns_keeps_its_result() -> None:
    clock = FakeClock()

    @timeout(1.0, clock=clock)
    def slow() -> str:
        clock.advance(5.0)
        return "done"

    assert slow() == "done"


def test_zero_seconds_raises_on_entry() -> None:
    with pytest.raises(DeadlineExceeded):
        timeout(0.0).call(lambda: None)


def test_decorator_call_and_pipeline_scope_the_deadline() -> None:
    clock = FakeClock()
    policy = timeout(3.0, clock=clock)

    @policy
    def read() -> float | None:
        return remaining()

    assert read() == 3.0
    assert read.__name__ == "read"
    assert policy.call(remaining) == 3.0
    assert Pipeline(policy).call(remaining) == 3.0


def test_one_timeout_is_shared_safely_by_threads() -> None:
    shared = timeout(30.0)
    barrier = threading.Barrier(8)
    seen: list[float | None] = []
    lock = threading.Lock()

    def worker(nested: bool) -> None:
        with shared:
            if nested:
                with shared:
                    barrier.wait(timeout=5)
            else:
                barrier.wait(timeout=5)
            with lock:
                seen.append(current_deadline())
        with lock:
            seen.append(current_deadline())

    threads = [threading.Thread(target=worker, args=(i % 2 == 0,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 16
    assert sum(value is None for value in seen) == 8


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_bad_seconds_raise_value_error_naming_the_argument(seconds: float) -> None:
    with pytest.raises(ValueError, match="seconds"):
        Timeout(seconds)


def test_wrong_types_raise_type_error() -> None:
    with pytest.raises(TypeError, match="seconds"):
        timeout("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="clock"):
        timeout(1.0, clock=object())  # type: ignore[arg-type]


def test_timeout_is_a_policy_with_a_readable_repr() -> None:
    assert isinstance(timeout(1), resilient.Policy)
    assert repr(timeout(1.5, name="db")) == "Timeout(1.5, name='db')"


# -- async: real cancellation --------------------------------------------------------------------


async def test_async_timeout_cancels_the_work_and_raises_deadline_exceeded(
    events: list[Event],
) -> None:
    clock = FakeClock()
    finished = False
    with pytest.raises(DeadlineExceeded) as info:  # noqa: PT012
        async with timeout(1.0, clock=clock, name="fetch"):
            await clock.asleep(5.0)
            await anyio.sleep_forever()
            finished = True
    assert not finished
    assert info.value.timeout == 1.0
    assert [(type(e), e.name, e.timeout) for e in events] == [(DeadlineExceededEvent, "fetch", 1.0)]
    assert remaining() is None


async def test_async_decorator_cancels_a_hung_call() -> None:
    clock = FakeClock()

    @timeout(2.0, clock=clock)
    async def hang() -> None:
        await clock.asleep(3.0)
        await anyio.sleep_forever()

    with pytest.raises(DeadlineExceeded):
        await hang()
    with pytest.raises(DeadlineExceeded):
        await Pipeline(timeout(2.0, clock=clock)).acall(hang.__wrapped__)  # type: ignore[attr-defined]


async def test_async_work_that_finishes_in_time_returns_its_result() -> None:
    clock = FakeClock()

    async def quick() -> str:
        await clock.asleep(0.5)
        return "ok"

    assert await timeout(1.0, clock=clock).acall(quick) == "ok"
    async with timeout(1.0, clock=clock) as deadline:
        await clock.asleep(0.5)
        assert deadline.remaining() == pytest.approx(0.5)


async def test_outer_cancellation_propagates_unchanged() -> None:
    with anyio.CancelScope() as outer:
        async with timeout(30.0):
            outer.cancel()
            await anyio.sleep_forever()
    assert outer.cancelled_caught


async def test_inner_timeout_fires_first_and_outer_code_goes_on() -> None:
    clock = FakeClock()
    async with timeout(10.0, clock=clock):
        with pytest.raises(DeadlineExceeded) as info:  # noqa: PT012
            async with timeout(1.0, clock=clock):
                await clock.asleep(2.0)
                await anyio.sleep_forever()
        assert info.value.timeout == 1.0
        assert remaining() == pytest.approx(8.0)
        await clock.asleep(1.0)  # the outer scope is still alive and not cancelled


async def test_outer_timeout_firing_inside_an_inner_one_is_the_outers() -> None:
    clock = FakeClock()
    outer = timeout(1.0, clock=clock, name="outer")
    with pytest.raises(DeadlineExceeded) as info:  # noqa: PT012
        async with outer, timeout(10.0, clock=clock):
            assert remaining() == 1.0
            await clock.asleep(2.0)
            await anyio.sleep_forever()
    assert info.value.timeout == 1.0


async def test_entering_an_expired_async_scope_raises_at_once() -> None:
    clock = FakeClock()
    async with timeout(1.0, clock=clock):
        clock.advance(1.0)
        with pytest.raises(DeadlineExceeded):
            async with timeout(1.0, clock=clock):
                pytest.fail("must not run")


async def test_one_timeout_is_shared_by_many_tasks() -> None:
    clock = FakeClock()
    shared = timeout(5.0, clock=clock)
    outcomes: list[str] = []

    fast_done = anyio.Event()

    async def fast() -> None:
        async with shared:
            await clock.asleep(1.0)
            outcomes.append("ok")
        fast_done.set()

    async def slow() -> None:
        try:
            async with shared:
                await fast_done.wait()
                await clock.asleep(100.0)
                await anyio.sleep_forever()
        except DeadlineExceeded:
            outcomes.append("timeout")

    async with anyio.create_task_group() as tg:
        tg.start_soon(slow)
        tg.start_soon(fast)
    assert sorted(outcomes) == ["ok", "timeout"]


async def test_real_clock_async_timeout_smoke() -> None:
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        async with timeout(0.05):
            await anyio.sleep(10)
    assert 0.04 <= time.monotonic() - start < 5.0


async def test_cancel_scope_driver_used_on_python_3_10_cancels_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import resilient._timeout

    monkeypatch.setattr(resilient._timeout, "_UNCANCEL", False)
    clock = FakeClock()
    with pytest.raises(DeadlineExceeded):  # noqa: PT012
        async with timeout(1.0, clock=clock):
            await clock.asleep(2.0)
            await anyio.sleep_forever()
    async with timeout(1.0, clock=clock):
        await clock.asleep(0.5)
    with anyio.CancelScope() as outer:
        async with timeout(30.0):
            outer.cancel()
            await anyio.sleep_forever()
    assert outer.cancelled_caught


async def test_work_in_a_shielded_scope_inside_a_timeout_completes_as_on_trio() -> None:
    # On asyncio too: the deadline passes inside the shield, the shielded work finishes, and
    # the first checkpoint after the shield is where the timeout cancels.
    finished = []

    async def body() -> None:
        async with timeout(0.02):
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.1)
                finished.append("shielded")
            await anyio.sleep(10)
            finished.append("never")

    with pytest.raises(DeadlineExceeded):
        await body()
    assert finished == ["shielded"]


async def test_a_timeout_inside_a_shielded_scope_still_fires() -> None:
    with anyio.CancelScope(shield=True):
        with pytest.raises(DeadlineExceeded):
            async with timeout(0.02):
                await anyio.sleep(10)


async def test_a_deadline_passing_in_a_shielded_scope_on_a_fake_clock_waits_for_its_end() -> None:
    clock = FakeClock()
    steps = []

    async def body() -> None:
        async with timeout(0.05, clock=clock):
            with anyio.CancelScope(shield=True):
                for _ in range(10):
                    await clock.asleep(0.01)
                steps.append("shielded work done")
            while True:
                await clock.asleep(0.01)

    with pytest.raises(DeadlineExceeded):
        await body()
    assert steps == ["shielded work done"]


async def test_async_timeouts_exited_out_of_order_each_close_their_own(
    anyio_backend: str,
) -> None:
    # Two async generators interleaved in one task, each holding a timeout: the first one
    # to finish leaves the other one's deadline in scope, and arms no timer that outlives it.
    async def hold(seconds: float) -> AsyncIterator[None]:
        async with timeout(seconds):
            yield

    first, second = hold(200.0), hold(100.0)
    await first.__anext__()
    await second.__anext__()
    if anyio_backend == "trio":
        # On trio, cancel scopes must nest: leaving one out of order is trio's own error.
        with pytest.raises(RuntimeError, match="Cancel scope stack corrupted"):
            await first.__anext__()
        await second.aclose()
        return
    with pytest.raises(StopAsyncIteration):
        await first.__anext__()  # the outer block exits while the inner one is open
    left = remaining()
    assert left is not None
    assert 99.0 < left <= 100.0  # the open block's deadline
    with pytest.raises(StopAsyncIteration):
        await second.__anext__()
    assert current_deadline() is None
    with anyio.fail_after(5):
        await anyio.sleep(0.05)  # neither block's timer cancels the task later


async def test_concurrent_timeouts_fire_each_at_its_own_deadline() -> None:
    # On asyncio the timeouts of one loop share one timer: a shorter one entered after longer
    # ones still fires first, and each fires once, in deadline order.
    fired: list[float] = []

    async def hold(seconds: float) -> None:
        with pytest.raises(DeadlineExceeded):
            async with timeout(seconds):
                await anyio.sleep(10)
        fired.append(seconds)

    async with anyio.create_task_group() as group:
        for seconds in (0.6, 0.4, 0.05, 0.2):
            group.start_soon(hold, seconds)
    assert fired == [0.05, 0.2, 0.4, 0.6]


async def test_many_blocks_exiting_in_any_order_leave_later_timeouts_working() -> None:
    # Tasks leave their blocks before the deadlines, in an order other than the deadlines':
    # a block entered afterwards still fires, and no exited block's timer cancels anything.
    count = 300
    events = [anyio.Event() for _ in range(count)]
    finished = []

    async def hold(index: int) -> None:
        async with timeout(50.0 + (index * 37) % count):
            await events[index].wait()
        finished.append(index)

    async with anyio.create_task_group() as group:
        for index in range(count):
            group.start_soon(hold, index)
        await anyio.sleep(0.01)
        for index in sorted(range(count), key=lambda i: (i * 91) % count):
            events[index].set()
            await anyio.sleep(0)
    assert sorted(finished) == list(range(count))
    with pytest.raises(DeadlineExceeded):
        async with timeout(0.05):
            await anyio.sleep(10)
    async with timeout(0.05):
        pass
    with anyio.fail_after(5):
        await anyio.sleep(0.1)  # no timer of an exited block cancels the task


def test_the_shared_timers_keep_no_event_loop_alive() -> None:
    import asyncio
    import gc
    import weakref

    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def main() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        async with timeout(30.0):  # arms the loop's shared timer, left pending at the end
            await asyncio.sleep(0)

    for _ in range(3):
        asyncio.run(main())
    gc.collect()
    assert [loop() for loop in loops] == [None, None, None]
