"""The bulkhead and the retry budget against reference models (hypothesis state machines).

Bulkhead model (DESIGN §2.4): ``in_use`` slots out of ``max_concurrent``; up to
``max_waiting`` callers queue in FIFO order; everyone else is refused with
`BulkheadFullError`; a release hands its slot to the first in the queue. Blocks are held open
across steps (in this thread, or in waiting threads), and left normally or by an exception.

Retry budget model (DESIGN §2.1): every call and retry is kept with its time; retries are
allowed while ``retries < ratio * calls + minimum_per_second * window`` over the buckets that
the window covers.
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from resilient import Bulkhead, BulkheadFullError, RetryBudget
from resilient.testing import FakeClock

from ._models_support import Boom, Holder, bounded, record

WAIT = 10.0  # seconds a step waits for a thread to react (only when something is wrong)


class _Queued:
    """A thread waiting in the bulkhead, holding its slot once granted until told to go."""

    def __init__(self, bulkhead: Bulkhead) -> None:
        self.granted = threading.Event()
        self.go = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(bulkhead,), daemon=True)
        self.thread.start()

    def _run(self, bulkhead: Bulkhead) -> None:
        try:
            with bulkhead:
                self.granted.set()
                self.go.wait(WAIT)
        except BaseException as exc:  # reported by the machine
            self.error = exc
            self.granted.set()

    def leave(self) -> None:
        self.go.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()


class BulkheadMachine(RuleBasedStateMachine):
    steps = 0

    @initialize(limit=st.integers(1, 3), max_waiting=st.integers(0, 2))
    def setup(self, limit: int, max_waiting: int) -> None:
        self.bulkhead = Bulkhead(limit, max_waiting=max_waiting, name="model")
        self.limit, self.max_waiting = limit, max_waiting
        self.held: list[Holder | _Queued] = []  # hold a slot, oldest first
        self.queue: list[_Queued] = []  # waiting, first in line first

    def _wait_until_queued(self, count: int) -> None:
        for _ in range(int(WAIT / 0.001)):
            if self.bulkhead.waiting == count:
                return
            threading.Event().wait(0.001)
        raise AssertionError(f"{self.bulkhead.waiting} waiting, expected {count}")

    @rule()
    def enter(self) -> None:
        """Enter in this thread (never waits: a full bulkhead refuses, or we skip)."""
        if len(self.held) < self.limit and not self.queue:
            self.held.append(Holder(self.bulkhead))
        elif len(self.queue) >= self.max_waiting:
            with pytest.raises(BulkheadFullError) as info:
                Holder(self.bulkhead)
            assert info.value.name == "model"

    @precondition(lambda self: len(self.held) == self.limit)
    @rule()
    def enqueue(self) -> None:
        """A thread asks for a slot while all are taken: it queues, or is refused."""
        queued = _Queued(self.bulkhead)
        if len(self.queue) < self.max_waiting:
            self.queue.append(queued)
            self._wait_until_queued(len(self.queue))
            assert not queued.granted.is_set()
        else:
            assert queued.granted.wait(WAIT)
            queued.thread.join(WAIT)
            assert isinstance(queued.error, BulkheadFullError)

    @precondition(lambda self: bool(self.held))
    @rule(index=st.integers(0, 2), fail=st.booleans())
    def leave(self, index: int, fail: bool) -> None:
        """A block ends (normally or by raising): its slot goes to the first in line."""
        gone = self.held.pop(index % len(self.held))
        if isinstance(gone, Holder):
            gone.finish(Boom() if fail else None)
        else:
            gone.leave()
            assert gone.error is None
        if self.queue:
            first = self.queue.pop(0)
            assert first.granted.wait(WAIT), "the first in line was not granted the slot"
            assert first.error is None
            self.held.append(first)
            self._wait_until_queued(len(self.queue))
            assert not any(q.granted.is_set() for q in self.queue)  # FIFO: nobody else

    @invariant()
    def counts(self) -> None:
        if not hasattr(self, "bulkhead"):
            return
        BulkheadMachine.steps += 1
        assert self.bulkhead.in_use == len(self.held)
        assert self.bulkhead.available == self.limit - len(self.held)
        assert self.bulkhead.waiting == len(self.queue)

    def teardown(self) -> None:
        while getattr(self, "held", None):
            self.leave(0, False)
        if hasattr(self, "bulkhead"):
            assert self.bulkhead.in_use == 0  # no slot leaked


def test_bulkhead_matches_its_model() -> None:
    BulkheadMachine.steps = 0
    run_state_machine_as_test(BulkheadMachine, settings=bounded(40, 25))
    record(
        "test_bulkhead_matches_its_model",
        "bulkhead slots, FIFO queue, refusals, release on exceptions",
        steps=BulkheadMachine.steps,
    )


class BudgetMachine(RuleBasedStateMachine):
    decisions = 0

    @initialize(
        ratio=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
        minimum_per_second=st.sampled_from([0.0, 0.2, 1.0]),
        window=st.sampled_from([1.0, 10.0]),
        start=st.sampled_from([0.0, 1e9]),
    )
    def setup(self, ratio: float, minimum_per_second: float, window: float, start: float) -> None:
        self.clock = FakeClock(start)
        self.budget = RetryBudget(ratio, minimum_per_second, window, clock=self.clock)
        self.ratio, self.minimum = ratio, minimum_per_second * window
        self.width = window / 10
        self.events: list[tuple[float, str]] = []

    def in_window(self, kind: str) -> int:
        newest = int(self.clock.monotonic() // self.width)
        return sum(1 for t, k in self.events if k == kind and int(t // self.width) > newest - 10)

    @rule()
    def deposit(self) -> None:
        self.budget.deposit()
        self.events.append((self.clock.monotonic(), "call"))

    @rule()
    def withdraw(self) -> None:
        BudgetMachine.decisions += 1
        allowed = self.in_window("retry") < self.ratio * self.in_window("call") + self.minimum
        assert self.budget.try_withdraw() is allowed
        if allowed:
            self.events.append((self.clock.monotonic(), "retry"))

    @rule(seconds=st.sampled_from([0.05, 0.1, 0.3, 1.0, 4.0, 12.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def counts(self) -> None:
        if hasattr(self, "budget"):
            assert self.budget.calls == self.in_window("call")
            assert self.budget.retries == self.in_window("retry")


def test_retry_budget_matches_its_model() -> None:
    BudgetMachine.decisions = 0
    run_state_machine_as_test(BudgetMachine, settings=bounded(60, 50))
    record(
        "test_retry_budget_matches_its_model",
        "retry budget: retries within ratio * calls + minimum over the window",
        decisions=BudgetMachine.decisions,
    )
