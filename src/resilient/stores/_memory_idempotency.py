"""Idempotency records in a `MemoryStore`: one lock-guarded dict entry per key.

An entry lives in the store's bounded LRU dict next to the limiters' keys (so ``len(store)``
counts it and ``max_keys`` bounds it) under ``(binding, storage key)``, as the list
``[expires_at, state, owner, fingerprint, result]``: ``expires_at`` in microseconds of the
policy's clock (the lease while pending, the TTL once done), ``state`` `_PENDING` or `_DONE`.
An expired entry counts as absent and is dropped when met. Every step holds the store's lock
for a few comparisons only, never across the user's code or an ``await``, except a replay: a
DONE entry never changes, so `claim` reads one without the lock (and so does not move it to
the recent end). ``resilient._speedups.Steps`` is `claim` and `complete` in C, used when the
extension is built. Keys and fingerprints are held as they are when short (`exact_key`,
`exact_fingerprint`): nothing here leaves the process, so no digest is needed to compare.

One binding per (store, clock) pair, so that policies sharing a store and a clock share their
keys, as they would through Redis.

Beyond ``max_keys`` the least recently claimed entry is evicted even if it is live: a result
evicted early lets its key run again. Size the store for the keys expected within ``ttl``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._clock import Clock
from .._idempotency import CLAIMED, DONE, IN_PROGRESS, REUSED, exact_key, held_as_they_are

if TYPE_CHECKING:
    from ._memory import MemoryStore

__all__: list[str] = []

_PENDING = 0
_DONE = 1
_TICKS = 1_000_000  # microseconds, as the limiters' entries
_CLAIMED = (CLAIMED, None)
_OWNERS = itertools.count()
_REUSED = (REUSED, None)
_SWEEP_EVERY = 4
_SWEEP = range(2 * _SWEEP_EVERY)


class _MemoryIdempotency:
    """The four idempotency steps over one `MemoryStore`, timed on one clock."""

    __slots__ = (
        "_data",
        "_lock",
        "_monotonic",
        "_system",
        "claim",
        "complete",
        "held_as_they_are",
    )

    claim: Callable[[str, Any, str, int], tuple[int, Any]]
    complete: Callable[[str, Any, bytes, int], bool]
    #: `resilient._idempotency.held_as_they_are`, in C when the C steps are used.
    held_as_they_are: Callable[[tuple[Any, ...]], bool]

    def __init__(self, store: MemoryStore, clock: Clock) -> None:
        self._lock = store._lock
        self._data = store._data
        self._monotonic = clock.monotonic
        # On the system clock, microseconds are read as integer nanoseconds // 1000: cheaper
        # than rounding a float, and what the limiters' entries use.
        self._system = clock.monotonic is time.monotonic
        from . import _memory  # the C steps, read when bound (the tests swap them)

        if _memory._speedups is not None:
            # The same two steps in C (resilient._speedups.Steps): same order, same lock.
            steps = _memory._speedups.Steps(
                binding=self,
                store=store,
                lock=self._lock,
                monotonic=None if self._system else clock.monotonic,
                claimed=_CLAIMED,
                reused=_REUSED,
                done=DONE,
                in_progress=IN_PROGRESS,
            )
            self.claim, self.complete = steps.claim, steps.complete
            self.held_as_they_are = _memory._speedups.held_as_they_are
        else:
            self.claim, self.complete = self._steps(store)
            self.held_as_they_are = held_as_they_are

    def _steps(
        self, store: MemoryStore
    ) -> tuple[
        Callable[[str, Any, str, int], tuple[int, Any]], Callable[[str, Any, bytes, int], bool]
    ]:
        """`claim` and `complete`: closures over what they read, the two steps of every call."""
        data = self._data
        acquire = self._lock.acquire  # bound once: cheaper than a with statement per call
        release = self._lock.release
        monotonic = self._monotonic
        system = self._system
        monotonic_ns = time.monotonic_ns
        inserts = itertools.count(1).__next__

        def claim(key: str, owner: Any, fingerprint: Any, lease_ms: int) -> tuple[int, Any]:
            """Claim ``key`` for ``owner`` with a lease, or report what holds it."""
            composite = (self, key)
            entry = data.get(composite)
            now = monotonic_ns() // 1000 if system else round(monotonic() * _TICKS)
            if entry is not None and entry[1] == _DONE and entry[0] > now:
                # A stored result, read without the lock: `complete` makes an entry DONE last,
                # after its result and expiry, and a DONE entry never changes. (Unlocked, the
                # entry is not moved to the recent end: a replay does not refresh it.)
                if entry[3] == fingerprint:
                    return (DONE, entry[4])
                return _REUSED
            acquire()
            try:
                # ``now`` read before the lock: an expiry judged on it is judged early, never
                # late, and a lease from it is at most shorter by the wait for the lock.
                entry = data.get(composite)
                if entry is not None:
                    if entry[0] > now:
                        if entry[3] != fingerprint:
                            return _REUSED
                        if entry[1] == _DONE:
                            data.move_to_end(composite)
                            return (DONE, entry[4])
                        return (IN_PROGRESS, (entry[0] - now) / _TICKS)
                    del data[composite]
                # `MemoryStore._insert`, inlined, with this clock's ``now`` for this binding's
                # entries: drop stale entries at the front, evict beyond max_keys. The front is
                # looked at on one insert in `_SWEEP_EVERY`, dropping up to twice that many
                # stale entries: the rate `_insert` drops them at, without reading the oldest
                # entry (cold in the CPU's caches) on every call.
                for _ in _SWEEP if inserts() % _SWEEP_EVERY == 0 else ():
                    if not data:
                        break
                    oldest = next(iter(data))
                    binding = oldest[0]
                    if data[oldest][0] > (now if binding is self else binding.now()):
                        break
                    del data[oldest]
                if len(data) >= store.max_keys:
                    data.popitem(last=False)
                data[composite] = [now + lease_ms * 1000, _PENDING, owner, fingerprint, None]
                return _CLAIMED
            finally:
                release()

        def complete(key: str, owner: Any, result: bytes, ttl_ms: int) -> bool:
            """Store ``result`` for ``ttl_ms`` if ``owner`` still holds a live lease on ``key``."""
            composite = (self, key)
            acquire()
            try:
                now = monotonic_ns() // 1000 if system else round(monotonic() * _TICKS)
                entry = data.get(composite)
                if entry is None or entry[1] != _PENDING or entry[2] != owner or entry[0] <= now:
                    return False
                # In this order: `claim` reads a DONE entry without the lock.
                entry[4] = result
                entry[0] = now + ttl_ms * 1000
                entry[1] = _DONE
                return True
            finally:
                release()

        return claim, complete

    def now(self) -> int:
        """The clock, in microseconds (what `MemoryStore` expects of a binding)."""
        if self._system:
            return time.monotonic_ns() // 1000
        return round(self._monotonic() * _TICKS)

    def default_live(self) -> bool:
        """This binding holds no key outside the store's dict."""
        return False

    def reset_default(self) -> None:
        """Nothing to reset (see `default_live`)."""

    suspends = False

    #: Keys and fingerprints are held as they are when short (`exact_key`, `exact_fingerprint`).
    exact = True

    def storage_key(self, namespace: str, key: str) -> str:
        """``idem:<len(namespace)>:<namespace>:<key>``, a long key as ``#<sha256(key)>``."""
        return exact_key(self.key_prefix(namespace), key)

    def key_prefix(self, namespace: str) -> str:
        """``idem:<len(namespace)>:<namespace>:``, what `storage_key` puts before the key.

        The length makes the prefix unambiguous: keys of any length follow it.
        """
        return f"idem:{len(namespace)}:{namespace}:"

    #: A token unique in this process (the store is one process's memory): an int, which is
    #: all that comparing owners needs.
    new_owner: Callable[[], Any] = staticmethod(_OWNERS.__next__)

    async def aclaim(
        self, key: str, owner: str, fingerprint: Any, lease_ms: int
    ) -> tuple[int, Any]:
        """`claim`: memory never waits, so the async form is the sync one."""
        return self.claim(key, owner, fingerprint, lease_ms)

    async def acomplete(self, key: str, owner: str, result: bytes, ttl_ms: int) -> bool:
        """Async `complete`."""
        return self.complete(key, owner, result, ttl_ms)

    def release(self, key: str, owner: str) -> bool:
        """Forget ``key`` if ``owner`` holds its lease (pending); False otherwise."""
        composite = (self, key)
        with self._lock:
            entry = self._data.get(composite)
            if entry is None or entry[1] != _PENDING or entry[2] != owner:
                return False
            del self._data[composite]
            return True

    async def arelease(self, key: str, owner: str) -> bool:
        """Async `release`."""
        return self.release(key, owner)

    def read(self, key: str) -> tuple[str, Any, bytes | None] | None:
        """``(state, fingerprint, result)`` of a live record, or None."""
        with self._lock:
            entry = self._data.get((self, key))
            if entry is None or entry[0] <= self.now():
                return None
            return ("done" if entry[1] == _DONE else "pending", entry[3], entry[4])

    async def aread(self, key: str) -> tuple[str, Any, bytes | None] | None:
        """Async `read`."""
        return self.read(key)
