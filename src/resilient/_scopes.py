"""Open ``with`` blocks of policies, found again by their exit wherever it runs.

Policies used as ``with`` / ``async with`` keep what ``__exit__`` needs (a permit, a start
time) in an *entry* here rather than on the policy object, so one policy can be entered by many
threads and tasks at once, and nested in itself.

A plain ContextVar stack is not enough: the exit of a block may run in another context than
its entry (two interleaved generators that each hold a block, a sync ``yield`` dependency whose
entry and exit run in two worker threads, an exit in a copied context). So each entry is
recorded twice: on a ContextVar stack, and in a registry of the owner's open entries, keyed by
the frame that runs the ``with`` statement (the same frame runs the matching exit, whichever
thread or context resumes it). An exit claims, in this order:

1. the innermost open entry of its owner made from the same frame (exact for every ``with``
   statement written in code: generators, threads, copied contexts);
2. the innermost open entry of its owner on this context's stack (for entries and exits driven
   by a helper such as `contextlib.ExitStack`, whose frames differ);
3. the oldest open entry of its owner anywhere (no resource is ever leaked; only the
   attribution of an exit driven from another frame *and* another context may be wrong).

An entry is claimed exactly once, under a lock, so what it holds is returned exactly once. An
exit with no open entry at all raises `RuntimeError` and changes nothing.
"""

from __future__ import annotations

import sys
import threading
from contextvars import ContextVar
from types import FrameType
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["ScopeStack", "caller_frame"]

caller_frame = sys._getframe


# An entry is a small list (cheaper to build than an object, on the path of every block):
# [owner, data, frame, the previous entry on its context's stack, closed].
_OWNER, _DATA, _FRAME, _PREV, _CLOSED = range(5)


class ScopeStack(Generic[T]):
    """The open blocks of one kind of policy: per context, and per owner across contexts."""

    __slots__ = ("_lock", "_open", "_var")

    def __init__(self, name: str) -> None:
        self._var: ContextVar[list[Any] | None] = ContextVar(name, default=None)
        self._lock = threading.Lock()
        # id(owner) -> the owner's open entries, oldest first. An open entry holds its owner,
        # so the id cannot be reused while the list is not empty.
        self._open: dict[int, list[list[Any]]] = {}

    def push(self, owner: object, data: T, frame: FrameType | None) -> None:
        """Record that ``owner``'s block was entered from ``frame``, with what its exit needs.

        ``frame`` is the frame running the ``with`` statement (``caller_frame(1)`` in
        ``__enter__``, or in ``__aenter__``), or None when unknown.
        """
        var = self._var
        entry = [owner, data, frame, var.get(), False]
        key = id(owner)
        lock = self._lock
        lock.acquire()
        entries = self._open.get(key)
        if entries is None:
            self._open[key] = [entry]
        else:
            entries.append(entry)
        lock.release()
        var.set(entry)

    def pop(self, owner: object, frame: FrameType | None) -> T:
        """Claim ``owner``'s entry for an exit run from ``frame`` and return its data.

        Raises:
            RuntimeError: ``owner`` has no open block at all (more exits than entries).
        """
        var = self._var
        top = var.get()
        key = id(owner)
        lock = self._lock
        lock.acquire()
        try:
            entries = self._open.get(key)
            if not entries:
                raise RuntimeError(f"{owner!r} exited without a matching enter")
            found = entries[-1]
            if frame is None or found[_FRAME] is not frame:  # not the common case
                found = _search(entries, owner, frame, top)
                entries.remove(found)
            else:
                entries.pop()
            if not entries:
                del self._open[key]
            found[_CLOSED] = True
            found[_FRAME] = None
        finally:
            lock.release()
        if top is not None and top[_CLOSED]:  # drop closed entries from this context's top
            while top is not None and top[_CLOSED]:
                top = top[_PREV]
            var.set(top)
        return found[_DATA]  # type: ignore[no-any-return]


def _search(
    entries: list[list[Any]], owner: object, frame: FrameType | None, top: list[Any] | None
) -> list[Any]:
    """The entry an exit claims when the newest one is not from its frame (see the module)."""
    if frame is not None:
        for index in range(len(entries) - 1, -1, -1):
            if entries[index][_FRAME] is frame:
                return entries[index]
    entry_: list[Any] | None = top
    while entry_ is not None:
        if entry_[_OWNER] is owner and not entry_[_CLOSED]:
            return entry_
        entry_ = entry_[_PREV]
    return entries[0]
