"""`idempotent` with a `MemoryStore` against a reference model (a hypothesis state machine).

The model is DESIGN §2.6 as a table: per key, nothing, a pending claim (owner, arguments,
lease end) or a done record (arguments, result, expiry). A call claims a free or expired key
and runs; a call finding a live claim with the same arguments is refused with
`IdempotencyInProgress` (``wait=0``), a done record is replayed, other arguments are
`IdempotencyKeyReused`; a failure releases the claim (owner-checked); a call that outlives its
lease finds its claim gone or taken and raises `IdempotencyLeaseLost` without overwriting.
Calls run other idempotent calls inside them (the same key or another), and time moves inside
calls, so leases run out mid-call. Time is a `FakeClock` started at 0 and at 1e9.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from resilient import (
    IdempotencyInProgress,
    IdempotencyKeyReused,
    IdempotencyLeaseLost,
    idempotent,
)
from resilient.stores import MemoryStore
from resilient.testing import FakeClock

from ._models_support import Boom, bounded, record

TICKS = 1_000_000
KEYS = ["a", "b", "a very long key " * 8]
OWNERS = itertools.count()

# What a call does while it runs: (seconds it lasts, fails, nested call or None).
Plan = tuple[float, bool, Any]
plans = st.recursive(
    st.tuples(st.sampled_from([0.0, 1.0, 6.0]), st.booleans(), st.none()),
    lambda inner: st.tuples(
        st.sampled_from([0.0, 1.0, 6.0]),
        st.booleans(),
        st.tuples(st.sampled_from(KEYS), st.integers(1, 2), inner),
    ),
    max_leaves=3,
)


class IdempotencyMachine(RuleBasedStateMachine):
    calls = 0

    @initialize(
        start=st.sampled_from([0.0, 1e9]),
        ttl=st.sampled_from([3.0, 20.0]),
        lease=st.sampled_from([2.0, 5.0]),
    )
    def setup(self, start: float, ttl: float, lease: float) -> None:
        self.clock = FakeClock(start)
        self.ttl, self.lease = round(ttl * TICKS), round(lease * TICKS)
        self.records: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, int] = {}  # runs by key, in the implementation
        self.expected_runs: dict[str, int] = {}
        self.plans: list[Plan] = []

        @idempotent(
            store=MemoryStore(),
            key=lambda key, amount: key,
            ttl=ttl,
            lock_timeout=lease,
            wait=0,
            clock=self.clock,
        )
        def work(key: str, amount: int) -> dict[str, int]:
            seconds, fails, nested = self.plans.pop()
            self.runs[key] = self.runs.get(key, 0) + 1
            self.clock.advance(seconds)
            if nested is not None:
                self.call(*nested)
            if fails:
                raise Boom
            return {"amount": amount, "run": self.runs[key]}

        self.work = work

    def now(self) -> int:
        return round(self.clock.monotonic() * TICKS)

    def call(self, key: str, amount: int, plan: Plan) -> None:
        """One call, checked against the model (recursively for nested calls)."""
        IdempotencyMachine.calls += 1
        records = self.records
        now = self.now()
        found = records.get(key)
        if found is not None and found["expires"] <= now:
            del records[key]
            found = None
        if found is not None:
            if found["amount"] != amount:
                with pytest.raises(IdempotencyKeyReused):
                    self.work(key, amount)
            elif found["state"] == "pending":
                with pytest.raises(IdempotencyInProgress) as info:
                    self.work(key, amount)
                assert info.value.retry_after == pytest.approx((found["expires"] - now) / TICKS)
            else:
                assert self.work(key, amount) == found["result"]
            return
        owner = next(OWNERS)
        records[key] = {"state": "pending", "owner": owner, "amount": amount}
        records[key]["expires"] = now + self.lease
        self.expected_runs[key] = self.expected_runs.get(key, 0) + 1
        self.plans.append(plan)
        fails = plan[1]
        result = {"amount": amount, "run": self.expected_runs[key]}
        mine = records.get  # after the call: is the claim still this call's?

        def still_mine(end: int, live: bool) -> bool:
            current = mine(key)
            return (
                current is not None
                and current["state"] == "pending"
                and current["owner"] == owner
                and (not live or current["expires"] > end)
            )

        if fails:
            with pytest.raises(Boom):
                self.work(key, amount)
            if still_mine(self.now(), live=False):
                del records[key]
            return
        try:
            got = self.work(key, amount)
        except IdempotencyLeaseLost:
            assert not still_mine(self.now(), live=True)
            return
        end = self.now()
        assert still_mine(end, live=True), "completed although the lease was lost"
        assert got == result
        records[key] = {"state": "done", "amount": amount, "result": result}
        records[key]["expires"] = end + self.ttl

    @rule(key=st.sampled_from(KEYS), amount=st.integers(1, 2), plan=plans)
    def request(self, key: str, amount: int, plan: Plan) -> None:
        self.call(key, amount, plan)

    @rule(seconds=st.sampled_from([0.5, 2.0, 5.0, 30.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def runs_once_per_claim(self) -> None:
        if hasattr(self, "runs"):
            assert self.runs == self.expected_runs
            assert not self.plans


@pytest.mark.usefixtures("gcra_impl")  # the C steps of the memory store, and the Python ones
def test_idempotency_matches_its_model() -> None:
    IdempotencyMachine.calls = 0
    run_state_machine_as_test(IdempotencyMachine, settings=bounded(60, 30))
    record(
        "test_idempotency_matches_its_model",
        "idempotent: one run per claim, replay, reuse, in progress, lost lease",
        calls=IdempotencyMachine.calls,
    )
