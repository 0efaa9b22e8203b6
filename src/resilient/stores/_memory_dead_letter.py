"""Dead letters in process memory: the `MemoryStore` twin of the Redis stream.

Every queue name of a store has one `_Shelf`: an insertion-ordered dict of entries under one
`threading.Lock` (held for dict operations only, never across user code or an ``await``). An
entry handed to a replay is marked as taken until that replay acknowledges it (success: it is
deleted) or parks it again (failure: its failure record is replaced), so two replays running at
once in this process never hand out the same entry. Nothing survives the process: use a
`RedisStore` when parked messages must outlive it.
"""

from __future__ import annotations

import builtins
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._dead_letter import DeadLetterQueue

__all__: list[str] = []

#: One parked entry as the backends hand it over: (id, fields, failure record JSON or None).
Raw = tuple[str, dict[str, str], "str | None"]


class _Shelf:
    """The entries of one queue name, shared by every `DeadLetterQueue` bound to it."""

    __slots__ = ("entries", "last", "lock", "sequence", "taken")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[str, list[Any]] = {}  # id -> [fields, failure JSON or None]
        self.taken: set[str] = set()
        self.last = 0
        self.sequence = 0


class _MemoryRun:
    __slots__ = ("ids", "index")

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.index = 0


class _MemoryDeadLetters:
    """One queue's backend on a `MemoryStore` (sync methods and ``a``-prefixed twins)."""

    __slots__ = ("_shelf", "max_length")

    def __init__(self, shelf: _Shelf, max_length: int) -> None:
        self._shelf = shelf
        self.max_length = max_length

    def _new_id(self) -> str:
        # Stream-like ids, "<milliseconds>-<sequence>", increasing even if the clock is not.
        shelf = self._shelf
        now = max(int(time.time() * 1000), shelf.last)
        if now == shelf.last:
            shelf.sequence += 1
        else:
            shelf.last, shelf.sequence = now, 0
        return f"{now}-{shelf.sequence}"

    def add(self, fields: dict[str, str]) -> str | None:
        """Park an entry; its id, or None when the queue is full."""
        shelf = self._shelf
        with shelf.lock:
            if len(shelf.entries) >= self.max_length:
                return None
            entry_id = self._new_id()
            shelf.entries[entry_id] = [dict(fields), None]
            return entry_id

    def list(self, limit: int) -> builtins.list[Raw]:
        """Up to ``limit`` entries, oldest first."""
        shelf = self._shelf
        with shelf.lock:
            found: builtins.list[Raw] = []
            for entry_id, (fields, failure) in shelf.entries.items():
                if len(found) >= limit:
                    break
                found.append((entry_id, dict(fields), failure))
            return found

    def count(self) -> int:
        """The number of parked entries."""
        with self._shelf.lock:
            return len(self._shelf.entries)

    def purge(self) -> int:
        """Delete every entry; how many there were."""
        shelf = self._shelf
        with shelf.lock:
            count = len(shelf.entries)
            shelf.entries.clear()
            shelf.taken.clear()
            return count

    def start(self, consumer: str, claim_after_ms: int) -> _MemoryRun:
        """A replay run over the entries parked now (entries parked later wait for the next)."""
        with self._shelf.lock:
            return _MemoryRun(list(self._shelf.entries))

    def take(self, run: Any, count: int) -> builtins.list[Raw]:
        """The next ``count`` entries of the run that no other replay holds; [] when done."""
        shelf = self._shelf
        batch: builtins.list[Raw] = []
        with shelf.lock:
            ids = run.ids
            while run.index < len(ids) and len(batch) < count:
                entry_id = ids[run.index]
                run.index += 1
                entry = shelf.entries.get(entry_id)
                if entry is None or entry_id in shelf.taken:
                    continue
                shelf.taken.add(entry_id)
                batch.append((entry_id, dict(entry[0]), entry[1]))
        return batch

    def ack(self, entry_id: str) -> None:
        """Delete an entry whose replay succeeded."""
        shelf = self._shelf
        with shelf.lock:
            shelf.entries.pop(entry_id, None)
            shelf.taken.discard(entry_id)

    def fail(self, entry_id: str, record: str) -> None:
        """Keep an entry whose replay failed, with ``record`` as its last failure."""
        shelf = self._shelf
        with shelf.lock:
            entry = shelf.entries.get(entry_id)
            if entry is not None:
                entry[1] = record
            shelf.taken.discard(entry_id)

    def release(self, entry_ids: builtins.list[str]) -> None:
        """Give back entries taken but not handled (the replay stopped early)."""
        shelf = self._shelf
        with shelf.lock:
            shelf.taken.difference_update(entry_ids)

    # The async twins do no I/O: the lock is held for dict operations only.

    async def aadd(self, fields: dict[str, str]) -> str | None:
        """Async `add`."""
        return self.add(fields)

    async def alist(self, limit: int) -> builtins.list[Raw]:
        """Async `list`."""
        return self.list(limit)

    async def acount(self) -> int:
        """Async `count`."""
        return self.count()

    async def apurge(self) -> int:
        """Async `purge`."""
        return self.purge()

    async def astart(self, consumer: str, claim_after_ms: int) -> _MemoryRun:
        """Async `start`."""
        return self.start(consumer, claim_after_ms)

    async def atake(self, run: Any, count: int) -> builtins.list[Raw]:
        """Async `take`."""
        return self.take(run, count)

    async def aack(self, entry_id: str) -> None:
        """Async `ack`."""
        self.ack(entry_id)

    async def afail(self, entry_id: str, record: str) -> None:
        """Async `fail`."""
        self.fail(entry_id, record)

    async def arelease(self, entry_ids: builtins.list[str]) -> None:
        """Async `release`."""
        self.release(entry_ids)


#: The shelves of each MemoryStore, by queue name (held here so the store needs no new slot).
_SHELVES: weakref.WeakKeyDictionary[Any, dict[str, _Shelf]] = weakref.WeakKeyDictionary()
_SHELVES_LOCK = threading.Lock()


def bind(store: object, queue: DeadLetterQueue) -> _MemoryDeadLetters:
    """The backend of ``queue`` on ``store``: queues of the same name share their entries."""
    with _SHELVES_LOCK:
        shelves = _SHELVES.get(store)
        if shelves is None:
            shelves = _SHELVES[store] = {}
        shelf = shelves.get(queue.name)
        if shelf is None:
            shelf = shelves[queue.name] = _Shelf()
    return _MemoryDeadLetters(shelf, queue.max_length)
