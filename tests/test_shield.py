"""Must-complete sections finish, or are undone, whatever cancels their caller."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import anyio
import pytest

import resilient
from resilient._shield import must_complete


class Ledger:
    """A fake store round trip that takes a permit, and its undo."""

    def __init__(self) -> None:
        self.held: list[str] = []
        self.finished = 0

    async def take(self, key: str) -> str:
        await anyio.sleep(0.05)
        self.held.append(key)
        self.finished += 1
        return key

    async def give_back(self, key: str) -> None:
        await anyio.sleep(0)
        self.held.remove(key)


async def test_without_cancellation_the_result_comes_back() -> None:
    ledger = Ledger()
    assert await must_complete(ledger.take, "k", undo=ledger.give_back) == "k"
    assert ledger.held == ["k"]


async def test_an_error_of_the_work_propagates() -> None:
    async def broken() -> None:
        raise KeyError("store says no")

    with pytest.raises(KeyError):
        await must_complete(broken)


async def test_cancelled_by_a_cancel_scope_the_work_completes_then_is_undone() -> None:
    ledger = Ledger()
    with anyio.move_on_after(0.01) as scope:
        await must_complete(ledger.take, "k", undo=ledger.give_back)
    assert scope.cancelled_caught
    assert (ledger.finished, ledger.held) == (1, [])


async def test_cancelled_by_resilient_timeout_the_work_completes_then_is_undone() -> None:
    ledger = Ledger()
    with pytest.raises(resilient.DeadlineExceeded):
        async with resilient.timeout(0.01):
            await must_complete(ledger.take, "k", undo=ledger.give_back)
    assert (ledger.finished, ledger.held) == (1, [])


async def test_without_undo_the_work_completes_and_the_cancellation_goes_on() -> None:
    ledger = Ledger()
    with anyio.move_on_after(0.01) as scope:
        await must_complete(ledger.take, "k")
        pytest.fail("the cancellation must propagate")
    assert scope.cancelled_caught
    assert ledger.held == ["k"]


Canceller = Callable[[Callable[[], Awaitable[object]]], Awaitable[object]]


async def _with_asyncio_timeout(body: Callable[[], Awaitable[object]]) -> object:
    async with asyncio.timeout(0.01):
        return await body()


async def _with_task_cancel(body: Callable[[], Awaitable[object]]) -> object:
    task = asyncio.ensure_future(body())
    await asyncio.sleep(0.01)
    task.cancel()
    return await task


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("cancel", [_with_asyncio_timeout, _with_task_cancel])
async def test_native_asyncio_cancellation_cannot_interrupt_it(cancel: Canceller) -> None:
    ledger = Ledger()
    with pytest.raises((asyncio.CancelledError, TimeoutError)):
        await cancel(lambda: must_complete(ledger.take, "k", undo=ledger.give_back))
    assert (ledger.finished, ledger.held) == (1, [])
