"""Must-complete sections: store writes that hold or hand back a permit, whatever cancels.

A shared breaker's acquire (which may hand out a half-open trial) and its record (which gives
a trial back), an idempotency claim or release, any store write that takes or returns a
permit: if such a call is interrupted half-way, the permit is lost until a lease runs out, and
a breaker can stay stuck rejecting every call. They must complete, or be undone, whatever
cancels the caller: `resilient.timeout`, ``asyncio.timeout``, ``task.cancel()``, an anyio
cancel scope, trio.

An anyio shielded cancel scope is not enough on asyncio: a native ``task.cancel()`` (from
``asyncio.timeout``, ``asyncio.wait_for``, or any code that cancels the task) goes through it.
So `must_complete` runs the work, on asyncio, in a task of its own (with a copy of the
caller's context) and waits for it to finish even when the caller is cancelled, then lets the
cancellation go on; on trio (where shields always hold) it runs the work in a shielded scope.

```python
import anyio
from resilient._shield import must_complete

written: list[str] = []


async def claim(key: str) -> str:
    await anyio.sleep(0.01)  # a store round trip
    written.append(key)
    return key


async def release(key: str) -> None:
    written.remove(key)


async def main() -> None:
    with anyio.move_on_after(0.001):  # cancelled while the claim is in flight
        await must_complete(claim, "k", undo=release)
    assert written == []  # the claim completed, then was undone


anyio.run(main)
```
"""

from __future__ import annotations

from asyncio import CancelledError, Task
from asyncio import _get_running_loop as _running_loop
from asyncio import wait as _wait
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, TypeVar

import anyio

__all__ = ["must_complete"]

R = TypeVar("R")


async def _run(fn: Callable[..., Awaitable[R]], args: tuple[Any, ...]) -> R:
    return await fn(*args)


async def must_complete(
    fn: Callable[..., Awaitable[R]],
    /,
    *args: Any,
    undo: Callable[[R], Awaitable[object]] | None = None,
) -> R:
    """Await ``fn(*args)`` to its end even if the caller is cancelled meanwhile.

    If the caller was cancelled while ``fn`` ran, ``fn``'s result (when it returned one) is
    handed to ``undo`` (itself run to completion) and the cancellation then propagates, so what
    ``fn`` took is given back; without ``undo`` the cancellation propagates once ``fn`` has
    finished. If ``fn`` raises, its exception propagates (the cancellation, when there was one,
    wins).

    Args:
        fn: the async function to run.
        *args: its arguments.
        undo: what to run with ``fn``'s result when the caller is cancelled after all.
    """
    loop = _running_loop()
    if loop is None:  # trio: a shielded scope holds against every cancellation
        with anyio.CancelScope(shield=True):
            result = await fn(*args)
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()
        except BaseException:
            if undo is not None:
                with anyio.CancelScope(shield=True):
                    await undo(result)
            raise
        return result
    inner: Task[R] = loop.create_task(_run(fn, args))
    cancelled: BaseException | None = None
    while not inner.done():
        try:
            await _wait((inner,))
        except CancelledError as exc:  # the caller is cancelled: keep waiting for the work
            cancelled = exc
    if cancelled is None:
        return inner.result()
    if inner.cancelled() or inner.exception() is not None or undo is None:
        raise cancelled
    with suppress(CancelledError):  # cancelled again while undoing: the undo still completed
        await must_complete(undo, inner.result())
    raise cancelled
