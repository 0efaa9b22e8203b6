"""Dead letters in a Redis Stream with a consumer group: parked until replayed or purged.

Keys (one hash tag, so one Redis Cluster slot; no TTL on either: dead letters stay until
replayed or purged):

- ``<prefix>:{<name>:dlq}:stream``: the stream of parked entries, one field per part of the
  message (function, payload JSON, error type, message, traceback, time, attempts);
- ``<prefix>:{<name>:dlq}:failures``: a hash from entry id to the JSON record of its last failed
  replay (stream entries cannot be changed in place).

Every step is one Lua script in ``_scripts/`` run through the store's ``_eval`` / ``_aeval``:

- ``dead_letter_add``: XLEN against ``max_length``, then XADD, atomically; never ``MAXLEN``, which
  would trim the oldest entries silently. A full queue refuses the new entry.
- ``dead_letter_read``: hands a batch to one replay run (a consumer of the group
  ``resilient-replay``, named uniquely per run). The group is created with
  ``XGROUP CREATE key group 0 MKSTREAM`` (``BUSYGROUP`` tolerated; made again after a flush, so
  ``NOGROUP`` never loops). A run goes through three phases: the entries whose earlier replay
  failed (pending under the consumer ``parked``), then ``XAUTOCLAIM`` of entries left pending
  longer than ``claim_after`` by a run that died (the cursor is followed to ``0-0``; the 2- and
  3-element replies of Redis 6.2 and 7+ are both read), then ``XREADGROUP ... >`` for entries
  never handed out.
- ``dead_letter_ack``: XACK and XDEL (and the failure record) in one step, after the handler
  succeeded. An entry is removed only then: a worker that dies mid-replay leaves its entries
  pending, and the next run claims them (at-least-once).
- ``dead_letter_fail``: records the failure and moves the entry to the consumer ``parked``.
- ``dead_letter_list``, ``dead_letter_count``, ``dead_letter_purge``: XRANGE, XLEN, DEL.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._redis import RedisStore

__all__: list[str] = []

GROUP = "resilient-replay"
PARKED = "parked"
_PHASES = ("parked", "claim", "new")
_DONE = "0-0"

Raw = tuple[str, dict[str, str], "str | None"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(flat: Any) -> dict[str, str]:
    items = [_text(item) for item in flat]
    return dict(zip(items[::2], items[1::2], strict=False))


def _raw(entry: Any) -> Raw:
    entry_id, flat, failure = entry[0], entry[1], entry[2] if len(entry) > 2 else None
    return (_text(entry_id), _fields(flat), None if not failure else _text(failure))


class _RedisRun:
    __slots__ = ("consumer", "cursor", "min_idle", "phase")

    def __init__(self, consumer: str, claim_after_ms: int) -> None:
        self.consumer = consumer
        self.min_idle = claim_after_ms
        self.phase = 0
        self.cursor = _DONE


class _RedisDeadLetters:
    """One queue's backend on a `RedisStore` (sync methods and ``a``-prefixed twins)."""

    __slots__ = ("_keys", "_store", "max_length")

    def __init__(self, store: RedisStore, name: str, max_length: int) -> None:
        self._store = store
        self._keys = (store._key(name, "dlq", "stream"), store._key(name, "dlq", "failures"))
        self.max_length = max_length

    # Each step is (script, numkeys, keys and args) for `_eval` / `_aeval`, and a reply parser.

    def _add(self, fields: dict[str, str]) -> tuple[Any, ...]:
        flat = [part for item in fields.items() for part in item]
        return (self._store._script("dead_letter_add"), 1, self._keys[0], self.max_length, *flat)

    @staticmethod
    def _added(reply: Any) -> str | None:
        return _text(reply[1]) if int(reply[0]) == 1 else None

    def _read(self, run: _RedisRun, count: int) -> tuple[Any, ...]:
        return (
            self._store._script("dead_letter_read"),
            2,
            *self._keys,
            GROUP,
            run.consumer,
            count,
            _PHASES[run.phase],
            run.cursor,
            run.min_idle,
            PARKED,
        )

    @staticmethod
    def _advance(run: _RedisRun, reply: Any) -> list[Raw]:
        cursor = _text(reply[0])
        if cursor == _DONE:
            run.phase += 1
        run.cursor = _DONE if cursor in (_DONE, ">") else cursor
        return [_raw(entry) for entry in reply[1:]]

    def _list(self, limit: int) -> tuple[Any, ...]:
        return (self._store._script("dead_letter_list"), 2, *self._keys, "-", limit)

    def _ack(self, entry_id: str) -> tuple[Any, ...]:
        return (self._store._script("dead_letter_ack"), 2, *self._keys, GROUP, entry_id)

    def _fail(self, entry_id: str, record: str) -> tuple[Any, ...]:
        script = self._store._script("dead_letter_fail")
        return (script, 2, *self._keys, GROUP, entry_id, PARKED, record)

    # -- sync -----------------------------------------------------------------------------------

    def add(self, fields: dict[str, str]) -> str | None:
        """Park an entry; its id, or None when the queue is full. Raises StoreUnavailable."""
        return self._added(self._store._eval(*self._add(fields)))

    def list(self, limit: int) -> builtins.list[Raw]:
        """Up to ``limit`` entries, oldest first."""
        return [_raw(entry) for entry in self._store._eval(*self._list(limit))]

    def count(self) -> int:
        """The number of parked entries."""
        return int(self._store._eval(self._store._script("dead_letter_count"), 1, self._keys[0]))

    def purge(self) -> int:
        """Delete every entry; how many there were."""
        return int(self._store._eval(self._store._script("dead_letter_purge"), 2, *self._keys))

    def start(self, consumer: str, claim_after_ms: int) -> _RedisRun:
        """A replay run for ``consumer`` (unique per run)."""
        return _RedisRun(consumer, claim_after_ms)

    def take(self, run: Any, count: int) -> builtins.list[Raw]:
        """The next batch of the run; [] when every phase is done."""
        while run.phase < len(_PHASES):
            batch = self._advance(run, self._store._eval(*self._read(run, count)))
            if batch:
                return batch
        return []

    def ack(self, entry_id: str) -> None:
        """Acknowledge and delete an entry whose replay succeeded."""
        self._store._eval(*self._ack(entry_id))

    def fail(self, entry_id: str, record: str) -> None:
        """Keep an entry whose replay failed, with ``record`` as its last failure."""
        self._store._eval(*self._fail(entry_id, record))

    def release(self, entry_ids: builtins.list[str]) -> None:
        """Entries taken but not handled stay pending; a later run claims them."""

    # -- async ----------------------------------------------------------------------------------

    async def aadd(self, fields: dict[str, str]) -> str | None:
        """Async `add`."""
        return self._added(await self._store._aeval(*self._add(fields)))

    async def alist(self, limit: int) -> builtins.list[Raw]:
        """Async `list`."""
        return [_raw(entry) for entry in await self._store._aeval(*self._list(limit))]

    async def acount(self) -> int:
        """Async `count`."""
        script = self._store._script("dead_letter_count")
        return int(await self._store._aeval(script, 1, self._keys[0]))

    async def apurge(self) -> int:
        """Async `purge`."""
        script = self._store._script("dead_letter_purge")
        return int(await self._store._aeval(script, 2, *self._keys))

    async def astart(self, consumer: str, claim_after_ms: int) -> _RedisRun:
        """Async `start`."""
        return self.start(consumer, claim_after_ms)

    async def atake(self, run: Any, count: int) -> builtins.list[Raw]:
        """Async `take`."""
        while run.phase < len(_PHASES):
            batch = self._advance(run, await self._store._aeval(*self._read(run, count)))
            if batch:
                return batch
        return []

    async def aack(self, entry_id: str) -> None:
        """Async `ack`."""
        await self._store._aeval(*self._ack(entry_id))

    async def afail(self, entry_id: str, record: str) -> None:
        """Async `fail`."""
        await self._store._aeval(*self._fail(entry_id, record))

    async def arelease(self, entry_ids: builtins.list[str]) -> None:
        """Async `release`."""
