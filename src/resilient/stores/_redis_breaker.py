"""A circuit breaker whose state and window live in Redis, shared by every process.

`_RedisCircuitBackend` implements the breaker's backend interface (see
`resilient._circuit_breaker`) with one Lua script, ``_scripts/circuit_breaker.lua``: every
acquire, record and operator action is one atomic round trip that reads Redis's clock, applies
the same state machine as the memory backend and refreshes the TTL of the breaker's one hash.

Periods. Every CLOSED or HALF_OPEN period has a generation number in Redis; a permit carries
the generation it was issued in, and an outcome reported with an older generation is dropped,
exactly as the memory backend drops outcomes of calls that began in an earlier period.

Events. A transition is reported (``CircuitStateChanged``) by the process whose call made it;
the other processes see the new state in their next reply (rejections, trial permits).

A closed state trusted for a while (opt-in: ``RedisStore(breaker_staleness=S)``). By default
every call asks Redis for a permit, then reports its outcome: two round trips. With ``S`` > 0,
a reply saying CLOSED (an acquire's, or a record's: each carries the state and generation back)
is trusted for ``S`` seconds from when its request was sent: calls in that time are admitted
without asking, so a steady stream of calls costs one round trip each (the record). Outcomes
are still recorded one by one, atomically, so the window's counts stay exact; what is loosened
is admission only: a process may admit calls for up to ``S`` seconds after another process
opened the breaker (their outcomes, from an earlier generation, are then dropped as usual).
Its own opening, a half-open or open state, an operator action or a Redis failure ends the
trust at once; trials (HALF_OPEN) always ask Redis.

When Redis fails, the store's ``on_error`` decides:

- ``"allow"`` (default): this process falls back to a breaker of its own, in memory, with the
  same settings, for ``error_retry_after`` seconds, then tries Redis again; a ``StoreError``
  event with ``action="local"`` says so. Outcomes of calls admitted by Redis that cannot be
  reported are counted in the local breaker instead.
- ``"deny"``: calls are rejected with `CircuitOpenError` (``retry_after`` the rest of the
  ``error_retry_after`` pause) until Redis answers again; ``action="deny"``.
- ``"raise"``: acquiring raises `StoreUnavailable` (the call does not run). Outcomes are never
  turned into errors after the call ran: they go to the local breaker (``action="local"``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from itertools import islice
from typing import TYPE_CHECKING, Any

from .._circuit_breaker import (
    FAILURE,
    HALF_OPEN,
    NEUTRAL,
    OPEN,
    TIMEOUT,
    CircuitMetrics,
    CircuitState,
    CountWindow,
    _MemoryBackend,
    _Permit,
    _Rejection,
)
from .._errors import StoreUnavailable
from .._events import HUB, StoreError
from .._shield import must_complete

if TYPE_CHECKING:
    from .._circuit_breaker import CircuitBreaker
    from ._redis import RedisStore

__all__: list[str] = []

_VERDICT_TRIAL = 2
_VERDICT_PASS = 3
_DAY_MS = 86_400_000
_MIN_LEASE_MS = 10_000
_MAX_DELAYS = 32  # open periods sent to the script; the last one repeats after that


class _SharedPermit(_Permit):
    """A permit issued by Redis, for the period numbered ``generation`` (-1: record nothing)."""

    __slots__ = ("generation",)

    def __init__(self, trial: bool, generation: int) -> None:
        super().__init__(trial)
        self.generation = generation


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _RedisCircuitBackend:
    """The breaker's state machine in Redis, with a local breaker for when Redis fails."""

    shared = True
    closed: _Permit | None = None  # every call asks Redis

    def __init__(
        self, store: RedisStore, breaker: CircuitBreaker, settings: dict[str, Any]
    ) -> None:
        self._store = store
        self._name = breaker.name
        self._kind = breaker.kind
        self._settings = settings
        self._on_transition = settings["on_transition"]
        self._clock = settings["clock"]
        self._slow_call_duration: float | None = settings["slow_call_duration"]
        self._local = _MemoryBackend(**settings)
        self._local_used = False  # the local breaker decided something since Redis last did
        self._offline_until: float | None = None
        self._last_state = CircuitState.CLOSED
        self._last_metrics: CircuitMetrics | None = None
        #: Seconds a CLOSED reply is trusted for (0: never, ask Redis on every call).
        self._staleness: float = store.breaker_staleness
        #: (when the request whose reply said CLOSED was sent, on ``clock``; the permit of
        #: that period, or None once a later reply said otherwise). One tuple, replaced whole.
        self._trusted: tuple[float, _SharedPermit | None] = (float("-inf"), None)
        self._script = store._script("circuit_breaker")
        self._key = store._key("circuit_breaker", breaker.name, "state")
        # A count window's ring of outcomes (same hash tag: same Cluster slot).
        self._ring_key = store._key("circuit_breaker", breaker.name, "ring")

        window = settings["window"]
        if isinstance(window, CountWindow):
            window_args = ["count", str(window.size), "1"]
            window_ms = 0
        else:
            window_ms = round(window.seconds * 1000)
            if window_ms < window.buckets:
                raise ValueError(
                    f"window: with a RedisStore, time buckets must be at least 1 ms wide, got "
                    f"{window!r}"
                )
            window_args = ["time", str(window_ms), str(window.buckets)]
        open_for = settings["open_for"]
        if isinstance(open_for, (int, float)):
            delays = [float(open_for)]
        else:
            delays = [float(d) for d in islice(open_for.delays(), _MAX_DELAYS)] or [0.0]
        delays_ms = [max(0, round(d * 1000)) for d in delays]
        longest = max(delays_ms)
        slow_ms = round((self._slow_call_duration or 0.0) * 1000)
        lease_ms = max(_MIN_LEASE_MS, longest, 2 * slow_ms)
        ttl_ms = max(_DAY_MS, 2 * window_ms, 2 * longest, 2 * lease_ms)

        def rate(value: float | None) -> str:
            return "-1" if value is None else repr(float(value))

        self._args = [
            *window_args,
            str(settings["minimum_calls"]),
            rate(settings["failure_rate"]),
            rate(settings["slow_call_rate"]),
            str(settings["consecutive_failures"] or 0),
            str(settings["half_open_calls"]),
            ",".join(map(str, delays_ms)),
            str(ttl_ms),
            str(lease_ms),
        ]
        #: Tests only: a function giving the time (ms) the script uses instead of Redis TIME.
        self.pin: Callable[[], int] | None = None

    # -- script calls --------------------------------------------------------------------------

    def _argv(self, op: str, *extra: str) -> list[str | int]:
        record = list(extra) if extra else ["", "", ""]
        pinned = "" if self.pin is None else str(self.pin())
        return [op, *self._args, *record, pinned]

    def _eval(self, op: str, *extra: str) -> Sequence[Any]:
        reply: Sequence[Any] = self._store._eval(
            self._script, 2, self._key, self._ring_key, *self._argv(op, *extra)
        )
        return reply

    async def _aeval(self, op: str, *extra: str) -> Sequence[Any]:
        reply: Sequence[Any] = await self._store._aeval(
            self._script, 2, self._key, self._ring_key, *self._argv(op, *extra)
        )
        return reply

    def _transition(self, old: Any, new: CircuitState) -> None:
        old_text = _text(old)
        if old_text:
            self._on_transition(CircuitState(old_text), new)

    # -- a CLOSED state trusted for a while (breaker_staleness) -------------------------------

    def _trust(self, sent: float | None, state: CircuitState, generation: Any) -> None:
        """Note what a reply to a request sent at ``sent`` (None: not timed) said."""
        if not self._staleness:
            return
        if sent is None or state is not CircuitState.CLOSED:
            # Distrust at once, whatever the age of this reply (it is news of a change).
            self._trusted = (self._trusted[0], None)
            return
        if sent < self._trusted[0]:
            return  # a reply older than the one trusted now: no news
        permit = self._trusted[1]
        generation = int(generation)
        if permit is None or permit.generation != generation:
            permit = _SharedPermit(False, generation)
        self._trusted = (sent, permit)

    def _trusted_permit(self, now: float) -> _SharedPermit | None:
        """The permit of the CLOSED period Redis reported less than ``staleness`` ago."""
        sent, permit = self._trusted
        if permit is not None and now - sent < self._staleness:
            return permit
        return None

    # -- when Redis fails ----------------------------------------------------------------------

    def _offline(self, now: float) -> bool:
        """Whether this process is still in the pause after a Redis failure."""
        until = self._offline_until
        if until is None:
            return False
        if now < until:
            return True
        self._offline_until = None
        return False

    def _online(self) -> None:
        if self._local_used:
            # Redis is back and owns the state again; the next outage starts from scratch.
            self._local = _MemoryBackend(**{**self._settings, "now": self._clock()})
            self._local_used = False

    def _failed(self, error: StoreUnavailable, operation: str, now: float) -> None:
        """Apply ``on_error`` to a failed script call.

        Says so in a ``StoreError`` event, then raises the error, or pauses Redis for
        ``error_retry_after`` seconds (the caller then acts locally).
        """
        self._trust(None, CircuitState.CLOSED, 0)  # Redis's word is not fresh any more
        on_error = self._store.on_error
        if operation == "record":
            action = "local"  # the call already ran: its outcome is neither refused nor raised
        elif on_error == "raise":
            action = "raise"
        elif on_error == "deny" and operation == "acquire":
            action = "deny"
        else:
            action = "local"
        self._store._health.failed(
            error, policy=self._kind, name=self._name, operation=operation, action=action
        )
        if HUB.active:
            HUB.emit(StoreError(self._kind, self._name, operation, error, action))
        if action == "raise":
            raise error
        if on_error != "raise":  # "raise" asks Redis every time: no pause
            self._offline_until = now + self._store.error_retry_after

    def _acquire_failed(self, error: StoreUnavailable | None, now: float) -> _Permit | _Rejection:
        if error is not None:
            self._failed(error, "acquire", now)
        if self._store.on_error == "deny":
            return _Rejection(OPEN, (self._offline_until or now) - now)
        self._local_used = True
        return self._local.acquire(now)

    def _record_failed(
        self, error: StoreUnavailable, outcome: int, duration: float, now: float | None
    ) -> None:
        when = self._clock() if now is None else now
        self._failed(error, "record", when)
        self._record_locally(outcome, duration, when)

    def _record_locally(self, outcome: int, duration: float, now: float) -> None:
        self._local_used = True
        permit = self._local.closed
        if permit is not None:
            self._local.record(permit, outcome, duration, now)

    # -- replies -------------------------------------------------------------------------------

    def _permit(self, reply: Sequence[Any], now: float) -> _Permit | _Rejection:
        verdict, state_text, generation, retry_after_ms, old, _ = reply
        state = CircuitState(_text(state_text))
        self._last_state = state
        self._transition(old, state)
        if self._staleness:
            self._trust(now, state, generation)
        if verdict == 0:
            retry_after = 0.0 if state is HALF_OPEN else int(retry_after_ms) / 1000
            return _Rejection(state, retry_after)
        if verdict == _VERDICT_PASS:
            return _SharedPermit(False, -1)
        return _SharedPermit(verdict == _VERDICT_TRIAL, int(generation))

    def _record_args(self, permit: _SharedPermit, outcome: int, duration: float) -> tuple[str, ...]:
        if outcome == NEUTRAL:
            code = 4
        else:
            slow_limit = self._slow_call_duration
            slow = slow_limit is not None and duration >= slow_limit
            code = (outcome & FAILURE) | (2 if slow or outcome == TIMEOUT else 0)
        return (str(code), str(permit.generation), "1" if permit.trial else "0")

    def _recorded(self, reply: Sequence[Any], sent: float | None = None) -> None:
        state = CircuitState(_text(reply[0]))
        self._last_state = state
        self._transition(reply[1], state)
        if self._staleness:
            self._trust(sent, state, reply[2])

    def _metrics(self, name: str, reply: Sequence[Any], now: float) -> CircuitMetrics:
        state_text, old, age_ms, calls, failures, slow, consecutive = reply
        state = CircuitState(_text(state_text))
        self._last_state = state
        self._transition(old, state)
        if self._staleness and state is not CircuitState.CLOSED:
            self._trust(None, state, 0)
        calls = int(calls)
        self._last_metrics = metrics = CircuitMetrics(
            name=name,
            state=state,
            since=now - int(age_ms) / 1000,
            calls=calls,
            failures=int(failures),
            slow_calls=int(slow),
            failure_rate=int(failures) / calls if calls else 0.0,
            slow_call_rate=int(slow) / calls if calls else 0.0,
            consecutive_failures=int(consecutive),
        )
        return metrics

    def _read_failed(self, error: StoreUnavailable, name: str, now: float) -> CircuitMetrics:
        """A state read that Redis could not answer: the last snapshot seen, flagged stale.

        Reads are for operators and dashboards: whatever ``on_error`` says for calls, they
        neither raise nor start a pause; a ``StoreError`` event with ``action="stale"`` says
        what happened.
        """
        if HUB.active:
            HUB.emit(StoreError(self._kind, self._name, "read", error, "stale"))
        return self._stale(name, now)

    def _stale(self, name: str, now: float) -> CircuitMetrics:
        state = self._last_state
        last = self._last_metrics
        if last is None:
            return CircuitMetrics(name, state, now, 0, 0, 0, 0.0, 0.0, 0, stale=True)
        since = last.since if last.state is state else now
        return replace(last, name=name, state=state, since=since, stale=True)

    # -- the backend interface, sync -----------------------------------------------------------

    def acquire(self, now: float) -> _Permit | _Rejection:
        """A permit from Redis (or, after a failure, from the ``on_error`` fallback)."""
        if self._staleness:
            trusted = self._trusted_permit(now)
            if trusted is not None:
                return trusted
        if self._offline(now):
            return self._acquire_failed(None, now)
        try:
            reply = self._eval("acquire")
        except StoreUnavailable as error:
            return self._acquire_failed(error, now)
        self._online()
        return self._permit(reply, now)

    def record(self, permit: _Permit, outcome: int, duration: float, now: float | None) -> None:
        """Report the outcome of a call made with ``permit`` to whoever issued it."""
        if type(permit) is not _SharedPermit:
            self._local.record(permit, outcome, duration, now)
            return
        if permit.generation < 0 or (outcome == NEUTRAL and not permit.trial):
            return  # DISABLED, or a call that counts neither way: nothing to tell Redis
        sent = self._clock() if self._staleness else None
        try:
            reply = self._eval("record", *self._record_args(permit, outcome, duration))
        except StoreUnavailable as error:
            self._record_failed(error, outcome, duration, now)
            return
        self._recorded(reply, sent)

    def poll(self, now: float) -> CircuitState:
        """The state in Redis; with an async client, the state seen last (no I/O here)."""
        if self._store._async or self._offline(now):
            return self._last_state
        try:
            reply = self._eval("read")
        except StoreUnavailable as error:
            return self._read_failed(error, self._name, now).state
        return self._metrics(self._name, reply, now).state

    def snapshot(self, name: str, now: float) -> CircuitMetrics:
        """State and window counters from Redis (the last seen, ``stale``, if it fails)."""
        try:
            reply = self._eval("read")
        except StoreUnavailable as error:
            return self._read_failed(error, name, now)
        return self._metrics(name, reply, now)

    def force(self, state: CircuitState, now: float) -> None:
        """An operator transition, applied in Redis for every process."""
        op = _FORCE_OPS[state]
        try:
            reply = self._eval(op)
        except StoreUnavailable as error:
            self._force_locally(error, op, state, now)
            return
        self._recorded(reply)

    def _force_locally(
        self, error: StoreUnavailable, op: str, state: CircuitState, now: float
    ) -> None:
        self._failed(error, op, now)
        self._local_used = True
        self._local.force(state, now)

    # -- the backend interface, async ----------------------------------------------------------

    async def aacquire(self, now: float) -> _Permit | _Rejection:
        """Async `acquire`."""
        if self._staleness:
            trusted = self._trusted_permit(now)
            if trusted is not None:
                return trusted
        if self._offline(now):
            return self._acquire_failed(None, now)
        try:
            # Must complete: a trial slot handed out by Redis to a call cancelled meanwhile
            # would stay taken until its lease ran out; if the caller is cancelled (by anything,
            # on asyncio too) while Redis answers, the slot is given back before the
            # cancellation goes on. (Cancellation waits one round trip at most.)
            reply = await must_complete(self._aeval, "acquire", undo=self._give_back)
        except StoreUnavailable as error:
            return self._acquire_failed(error, now)
        self._online()
        return self._permit(reply, now)

    async def _give_back(self, reply: Sequence[Any]) -> None:
        """Undo an acquire whose caller was cancelled: return the trial it may hold."""
        # No send time for the trust: -inf makes a CLOSED reply no news (see `_trust`).
        permit = self._permit(reply, float("-inf"))
        if isinstance(permit, _SharedPermit) and permit.trial:
            await self.arecord(permit, NEUTRAL, 0.0, None)

    async def arecord(
        self, permit: _Permit, outcome: int, duration: float, now: float | None
    ) -> None:
        """Async `record`; it completes even when the caller is cancelled (see `must_complete`).

        So a cancelled call still reports its outcome, or gives its trial slot back.
        """
        if type(permit) is not _SharedPermit:
            self._local.record(permit, outcome, duration, now)
            return
        if permit.generation < 0 or (outcome == NEUTRAL and not permit.trial):
            return
        args = self._record_args(permit, outcome, duration)
        sent = self._clock() if self._staleness else None
        try:
            reply = await must_complete(self._aeval, "record", *args)
        except StoreUnavailable as error:
            self._record_failed(error, outcome, duration, now)
            return
        self._recorded(reply, sent)

    async def asnapshot(self, name: str, now: float) -> CircuitMetrics:
        """Async `snapshot`."""
        try:
            reply = await self._aeval("read")
        except StoreUnavailable as error:
            return self._read_failed(error, name, now)
        return self._metrics(name, reply, now)

    async def aforce(self, state: CircuitState, now: float) -> None:
        """Async `force`."""
        op = _FORCE_OPS[state]
        try:
            reply = await self._aeval(op)
        except StoreUnavailable as error:
            self._force_locally(error, op, state, now)
            return
        self._recorded(reply)


_FORCE_OPS = {
    CircuitState.CLOSED: "reset",
    CircuitState.FORCED_OPEN: "force_open",
    CircuitState.DISABLED: "disable",
}
