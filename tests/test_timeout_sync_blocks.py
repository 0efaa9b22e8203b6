"""Sync ``with timeout(...)`` blocks: each exit finds its own entry, in C as in Python.

Every test runs with the C ``__enter__`` / ``__exit__`` (`resilient._speedups.TimeoutHook`)
and with the Python ones (the ``timeout_impl`` fixture), and checks the same outcome.
"""

from __future__ import annotations

import contextvars
import gc
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

import resilient
from resilient import _timeout
from resilient._deadline import enter_deadline, exit_deadline


def open_blocks() -> tuple[int, int]:
    """How many sync timeout entries are open, and how many frames the index holds."""
    return len(_timeout._sync_open), len(_timeout._sync_frames)


def left() -> float:
    seconds = resilient.remaining()
    assert seconds is not None
    return seconds


def test_nested_blocks_restore_the_enclosing_deadline(timeout_impl: str) -> None:
    with resilient.timeout(100.0) as outer:
        assert 99.0 < left() <= 100.0
        with resilient.timeout(1.0) as inner:
            assert left() <= 1.0
            assert inner is not outer
            with resilient.timeout(50.0) as wider:
                assert wider.at == inner.at  # the earliest deadline wins
                assert left() <= 1.0
            assert resilient.current_deadline() == inner.at
        assert resilient.current_deadline() == outer.at
        assert open_blocks() == (1, 1)
    assert resilient.current_deadline() is None
    assert open_blocks() == (0, 0)


def test_nested_blocks_of_one_timeout(timeout_impl: str) -> None:
    t = resilient.timeout(100.0)
    with t as first:
        with t as second:
            assert second is not first
            assert second.at == first.at
            assert resilient.current_deadline() == first.at
        with t:
            assert open_blocks() == (2, 1)
        assert open_blocks() == (1, 1)
        assert resilient.current_deadline() == first.at
    assert resilient.current_deadline() is None
    assert open_blocks() == (0, 0)


def test_a_plain_deadline_in_scope_is_kept_when_earlier(timeout_impl: str) -> None:
    deadline, token = enter_deadline(1.0)
    try:
        with resilient.timeout(100.0) as entry:
            assert entry.at == deadline.at
            assert entry.timeout == 1.0
        with resilient.timeout(0.5) as entry:
            assert entry.at < deadline.at
        assert resilient.current_deadline() == deadline.at
    finally:
        exit_deadline(token)
    assert open_blocks() == (0, 0)


def test_entering_past_the_deadline_raises_and_records_nothing(timeout_impl: str) -> None:
    deadline, token = enter_deadline(0.0)
    try:
        with pytest.raises(resilient.DeadlineExceeded), resilient.timeout(5.0):
            pass  # pragma: no cover
        with pytest.raises(resilient.DeadlineExceeded), resilient.timeout(0.0):
            pass  # pragma: no cover
        assert resilient.current_deadline() == deadline.at
    finally:
        exit_deadline(token)
    assert open_blocks() == (0, 0)


def test_interleaved_generators_leave_no_deadline_behind(timeout_impl: str) -> None:
    def hold(seconds: float) -> Iterator[float]:
        with resilient.timeout(seconds):
            yield left()
            yield left()

    a, b = hold(100.0), hold(200.0)
    assert next(a) > 99.0
    assert next(b) <= 100.0  # a's deadline is still in scope: the earliest wins
    assert next(a) <= 100.0
    with pytest.raises(StopIteration):
        next(a)  # a exits first, while b's deadline is in scope
    assert next(b) <= 100.0  # b's entry took a's earlier deadline
    with pytest.raises(StopIteration):
        next(b)
    assert resilient.current_deadline() is None
    assert open_blocks() == (0, 0)


def test_exit_in_another_thread_than_the_entry(timeout_impl: str) -> None:
    def dependency() -> Iterator[float]:
        with resilient.timeout(100.0):
            yield left()

    gen = dependency()
    seen: list[Any] = []

    def run(step: Callable[[], Any]) -> None:
        try:
            seen.append(step())
        except BaseException as exc:
            seen.append(exc)

    first = threading.Thread(target=run, args=(lambda: next(gen),))
    first.start()
    first.join()
    assert open_blocks() == (1, 1)
    second = threading.Thread(target=run, args=(lambda: next(gen, None),))
    second.start()
    second.join()
    assert 99.0 < seen[0] <= 100.0
    assert seen[1] is None
    assert resilient.current_deadline() is None
    assert open_blocks() == (0, 0)


def test_exit_in_a_copied_context(timeout_impl: str) -> None:
    t = resilient.timeout(100.0)

    def enter() -> float:
        t.__enter__()
        return left()

    def leave() -> float | None:
        t.__exit__(None, None, None)
        return resilient.current_deadline()

    context = contextvars.copy_context()
    assert context.run(enter) > 99.0
    assert resilient.current_deadline() is None
    assert contextvars.copy_context().run(leave) is None
    assert open_blocks() == (0, 0)
    # The entry's own context still has the closed entry in scope; nothing is leaked.
    with pytest.raises(RuntimeError, match="without a matching enter"):
        leave()


def test_an_exit_stack_exits_each_entry(timeout_impl: str) -> None:
    t = resilient.timeout(100.0)
    with ExitStack() as stack:
        first = stack.enter_context(t)
        second = stack.enter_context(resilient.timeout(1.0))
        third = stack.enter_context(t)
        assert resilient.current_deadline() == second.at == third.at
        assert open_blocks()[0] == 3
        stack.pop_all().close()  # exits third, then second, then first
    assert [entry.closed for entry in (first, second, third)] == [True] * 3  # type: ignore[attr-defined]
    assert resilient.current_deadline() is None
    assert open_blocks() == (0, 0)


def test_more_exits_than_entries_raise_and_change_nothing(timeout_impl: str) -> None:
    t = resilient.timeout(100.0)
    with pytest.raises(RuntimeError, match="without a matching enter"):
        t.__exit__(None, None, None)
    with resilient.timeout(50.0) as entry:
        before = open_blocks()
        with pytest.raises(RuntimeError, match="without a matching enter"):
            t.__exit__(None, None, None)
        assert open_blocks() == before
        assert resilient.current_deadline() == entry.at
        assert not entry.closed
    assert open_blocks() == (0, 0)


def test_an_exception_in_the_block_propagates(timeout_impl: str) -> None:
    with pytest.raises(KeyError), resilient.timeout(100.0):
        raise KeyError("inside")
    assert resilient.current_deadline() is None
    assert open_blocks() == (0, 0)


def test_the_methods_called_directly(timeout_impl: str) -> None:
    t = resilient.timeout(100.0)
    entry = resilient.Timeout.__enter__(t)
    assert resilient.current_deadline() == entry.at
    assert resilient.Timeout.__exit__(t, None, None, None) is None
    assert resilient.current_deadline() is None
    assert open_blocks() == (0, 0)


def scenario() -> list[object]:
    """What a mix of blocks shows: which deadline is in scope, what is open, what raised."""
    seen: list[object] = []
    t, u = resilient.timeout(100.0), resilient.timeout(1.0)
    entries: list[Any] = []

    def look() -> None:
        current = resilient.current_deadline()
        seen.append(
            (
                None if current is None else [e.at for e in entries].index(current),
                [e.closed for e in entries],
                open_blocks(),
            )
        )

    def hold(timeout: resilient.Timeout) -> Iterator[None]:
        with timeout as entry:
            entries.append(entry)
            look()
            yield
            look()

    a, b = hold(t), hold(u)
    next(a)
    next(b)
    next(a, None)
    look()
    with ExitStack() as stack:
        entries.append(stack.enter_context(t))
        entries.append(stack.enter_context(t))
        look()
    look()
    context = contextvars.copy_context()
    entries.append(context.run(t.__enter__))
    contextvars.copy_context().run(t.__exit__, None, None, None)
    look()
    next(b, None)
    look()
    for exit_ in (t.__exit__, u.__exit__):
        try:
            exit_(None, None, None)
        except RuntimeError as exc:
            seen.append(str(exc))
    look()
    return seen


def test_the_c_and_python_blocks_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    if _timeout.NATIVE_SYNC is None:
        pytest.skip("resilient._speedups is not built or not wanted")
    outcomes = []
    for hooks in (_timeout.PYTHON_SYNC, _timeout.NATIVE_SYNC):
        monkeypatch.setattr(resilient.Timeout, "__enter__", hooks[0])
        monkeypatch.setattr(resilient.Timeout, "__exit__", hooks[1])
        outcomes.append(scenario())
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][-1] == (None, [True] * 5, (0, 0))


@pytest.mark.skipif(not hasattr(sys, "getrefcount"), reason="needs reference counts")
def test_the_c_blocks_leak_no_references(monkeypatch: pytest.MonkeyPatch) -> None:
    if _timeout.NATIVE_SYNC is None:
        pytest.skip("resilient._speedups is not built or not wanted")
    monkeypatch.setattr(resilient.Timeout, "__enter__", _timeout.NATIVE_SYNC[0])
    monkeypatch.setattr(resilient.Timeout, "__exit__", _timeout.NATIVE_SYNC[1])
    t = resilient.timeout(100.0)
    seconds = t.seconds

    def blocks() -> None:
        with t, resilient.timeout(1.0), t:
            pass
        with ExitStack() as stack:
            stack.enter_context(t)
            stack.enter_context(t)
        contextvars.copy_context().run(t.__enter__)
        contextvars.copy_context().run(t.__exit__, None, None, None)
        with pytest.raises(RuntimeError):
            t.__exit__(None, None, None)

    def counts() -> tuple[int, ...]:
        gc.collect()
        return (
            sys.getrefcount(t),
            sys.getrefcount(seconds),
            sys.getrefcount(_timeout._SYSTEM),
            len(gc.get_objects()),
        )

    for _ in range(10):
        blocks()
    before = counts()
    for _ in range(1000):
        blocks()
    assert counts() == before
    assert open_blocks() == (0, 0)
    assert resilient.current_deadline() is None
