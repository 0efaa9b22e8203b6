from __future__ import annotations

import anyio

import resilient
from resilient._deadline import enter_deadline, exit_deadline, get_deadline
from resilient.testing import FakeClock


def test_no_deadline_in_scope() -> None:
    assert resilient.remaining() is None
    assert resilient.current_deadline() is None


def test_entered_deadline_is_visible_and_restored() -> None:
    clock = FakeClock(100.0)
    deadline, token = enter_deadline(5.0, clock)
    try:
        assert resilient.current_deadline() == 105.0
        clock.advance(2.0)
        assert resilient.remaining() == 3.0
    finally:
        exit_deadline(token)
    assert resilient.remaining() is None
    assert deadline.at == 105.0


def test_nested_deadline_never_extends_the_outer_one() -> None:
    clock = FakeClock()
    _, outer = enter_deadline(1.0, clock)
    try:
        inner_deadline, inner = enter_deadline(10.0, clock)
        try:
            assert resilient.remaining() == 1.0
        finally:
            exit_deadline(inner)
        shorter, token = enter_deadline(0.5, clock)
        try:
            assert resilient.remaining() == 0.5
        finally:
            exit_deadline(token)
    finally:
        exit_deadline(outer)
    assert inner_deadline.at == 1.0
    assert shorter.at == 0.5


def test_remaining_never_goes_below_zero() -> None:
    clock = FakeClock()
    deadline, token = enter_deadline(1.0, clock)
    try:
        clock.advance(5.0)
        assert resilient.remaining() == 0.0
        assert deadline.expired()
    finally:
        exit_deadline(token)


async def test_deadline_is_inherited_by_child_tasks() -> None:
    clock = FakeClock()
    seen: list[float | None] = []

    async def child() -> None:
        seen.append(resilient.remaining())

    _, token = enter_deadline(3.0, clock)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
    finally:
        exit_deadline(token)
    assert seen == [3.0]
    assert get_deadline() is None
