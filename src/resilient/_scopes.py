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
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["ScopeStack", "caller_frame"]

caller_frame = sys._getframe


class _Entry(Generic[T]):
    __slots__ = ("closed", "data", "frame", "owner", "prev")

    def __init__(
        self, owner: object, data: T, frame: FrameType | None, prev: _Entry[T] | None
    ) -> None:
        self.owner = owner
        self.data = data
        self.frame = frame
        self.prev = prev
        self.closed = False


class ScopeStack(Generic[T]):
    """The open blocks of one kind of policy: per context, and per owner across contexts."""

    __slots__ = ("_lock", "_open", "_var")

    def __init__(self, name: str) -> None:
        self._var: ContextVar[_Entry[T] | None] = ContextVar(name, default=None)
        self._lock = threading.Lock()
        # id(owner) -> the owner's open entries, oldest first. An open entry holds its owner,
        # so the id cannot be reused while the list is not empty.
        self._open: dict[int, list[_Entry[T]]] = {}

    def push(self, owner: object, data: T, frame: FrameType | None) -> None:
        """Record that ``owner``'s block was entered from ``frame``, with what its exit needs.

        ``frame`` is the frame running the ``with`` statement (``caller_frame(1)`` in
        ``__enter__``, or in ``__aenter__``), or None when unknown.
        """
        var = self._var
        entry = _Entry(owner, data, frame, var.get())
        with self._lock:
            entries = self._open.get(id(owner))
            if entries is None:
                self._open[id(owner)] = [entry]
            else:
                entries.append(entry)
        var.set(entry)

    def pop(self, owner: object, frame: FrameType | None) -> T:
        """Claim ``owner``'s entry for an exit run from ``frame`` and return its data.

        Raises:
            RuntimeError: ``owner`` has no open block at all (more exits than entries).
        """
        var = self._var
        top = var.get()
        with self._lock:
            entries = self._open.get(id(owner))
            if not entries:
                raise RuntimeError(f"{owner!r} exited without a matching enter")
            found = None
            if frame is not None:
                for entry in reversed(entries):
                    if entry.frame is frame:
                        found = entry
                        break
            if found is None:
                entry_ = top
                while entry_ is not None:
                    if entry_.owner is owner and not entry_.closed:
                        found = entry_
                        break
                    entry_ = entry_.prev
            if found is None:
                found = entries[0]
            found.closed = True
            found.frame = None
            entries.remove(found)
            if not entries:
                del self._open[id(owner)]
        # Drop the closed entries from the top of this context's stack.
        if top is not None and top.closed:
            while top is not None and top.closed:
                top = top.prev
            var.set(top)
        return found.data
