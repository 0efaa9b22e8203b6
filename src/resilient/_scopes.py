"""Open ``with`` blocks of policies, found again by their exit wherever it runs.

Policies used as ``with`` / ``async with`` keep what ``__exit__`` needs (a permit, a start
time) in an *entry* here rather than on the policy object, so one policy can be entered by many
threads and tasks at once, and nested in itself.

A plain ContextVar stack is not enough: the exit of a block may run in another context than
its entry (two interleaved generators that each hold a block, a sync ``yield`` dependency whose
entry and exit run in two worker threads, an exit in a copied context). So each entry is
recorded three times: on a ContextVar stack, in an index keyed by the frame that runs the
``with`` statement (the same frame runs the matching exit, whichever thread or context resumes
it), and in the registry of open entries, oldest first. An exit claims, in this order:

1. the innermost open entry of its owner made from the same frame (exact for every ``with``
   statement written in code: generators, threads, copied contexts);
2. the innermost open entry of its owner on this context's stack (for entries and exits driven
   by a helper such as `contextlib.ExitStack`, whose frames differ);
3. the oldest open entry of its owner anywhere (no resource is ever leaked; only the
   attribution of an exit driven from another frame *and* another context may be wrong).

An entry is claimed exactly once: claiming it is removing it from the registry, one atomic
``dict.pop``, so what it holds is returned exactly once even when exits race in several
threads. An exit with no open entry at all raises `RuntimeError` and changes nothing.

The common case (the exit runs in the frame of the entry, and it is that frame's newest entry)
takes no lock and allocates only the entry. A claimed entry is left on its context's stack,
marked closed and emptied, until the next entry made in that context drops it: an exit does not
touch the ContextVar.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from types import FrameType
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["BELOW", "DATA", "OWNER", "ScopeStack", "caller_frame"]

caller_frame = sys._getframe


# An entry is a small list (cheaper to build than an object, on the path of every block):
# [owner, data, frame, the previous entry made from its frame, the previous entry on its
# context's stack, closed].
_OWNER, _DATA, _FRAME, _BELOW, _PREV, _CLOSED = range(6)
# For policies that inline the common case of `ScopeStack.record` / `ScopeStack.pop` (see
# `resilient._timeout`): the positions they read.
OWNER, DATA, BELOW = _OWNER, _DATA, _BELOW


class ScopeStack(Generic[T]):
    """The open blocks of one kind of policy: per context, per frame and per owner."""

    __slots__ = ("_var", "frames", "open_entries")

    def __init__(self, name: str) -> None:
        self._var: ContextVar[list[Any] | None] = ContextVar(name, default=None)
        # id(entry) -> entry, for every open entry, oldest first. An open entry is here and
        # holds itself alive, so its id is not reused while it is open.
        self.open_entries: dict[int, list[Any]] = {}
        # frame -> the newest entry made from it that may be open (an index: it may hold
        # closed entries, which every reader skips).
        self.frames: dict[FrameType, list[Any]] = {}

    def push(self, owner: object, data: T, frame: FrameType | None) -> None:
        """Record that ``owner``'s block was entered from ``frame``, with what its exit needs.

        ``frame`` is the frame running the ``with`` statement (``caller_frame(1)`` in
        ``__enter__``, or in ``__aenter__``), or None when unknown.
        """
        var = self._var
        top = var.get()
        if top is not None and top[_CLOSED]:  # drop entries closed since the last push here
            top = top[_PREV]
            while top is not None and top[_CLOSED]:
                top = top[_PREV]
        if frame is None:
            entry = [owner, data, None, None, top, False]
        else:
            frames = self.frames
            entry = [owner, data, frame, frames.get(frame), top, False]
            frames[frame] = entry
        self.open_entries[id(entry)] = entry
        var.set(entry)

    def record(self, owner: object, data: T, frame: FrameType) -> None:
        """Like `push`, for an owner that keeps a stack of this context's entries itself.

        The entry is not put on this context's stack; the matching `pop` is given the owner's
        own stack (``context``) for its second rule.
        """
        frames = self.frames
        entry = [owner, data, frame, frames.get(frame), None, False]
        frames[frame] = entry
        self.open_entries[id(entry)] = entry

    def pop(
        self,
        owner: object,
        frame: FrameType | None,
        context: Callable[[], Iterable[object]] | None = None,
    ) -> T:
        """Claim ``owner``'s entry for an exit run from ``frame`` and return its data.

        ``context`` gives the data of the entries on this context's stack, innermost first,
        for entries made with `record`.

        Raises:
            RuntimeError: ``owner`` has no open block at all (more exits than entries).
        """
        frames = self.frames
        entry = frames.get(frame)  # type: ignore[arg-type]
        if (
            entry is None
            or entry[_OWNER] is not owner
            or self.open_entries.pop(id(entry), None) is None  # claimed elsewhere meanwhile
        ):
            entry = self._claim(owner, frame, context)
        elif entry[_BELOW] is None:  # the common case: the frame's only entry
            entry[_FRAME] = None
            frames.pop(frame, None)  # type: ignore[arg-type]
        else:
            self._unindex(entry)
        data = entry[_DATA]
        entry[_CLOSED] = True
        entry[_OWNER] = entry[_DATA] = None  # a closed entry holds nothing
        return data  # type: ignore[no-any-return]

    def _unindex(self, entry: list[Any]) -> None:
        """Drop a claimed ``entry`` from the frame index, if it heads its frame's chain."""
        frame = entry[_FRAME]
        if frame is None:
            return
        entry[_FRAME] = None
        frames = self.frames
        if frames.get(frame) is entry:
            below = entry[_BELOW]
            while below is not None and below[_CLOSED]:
                below = below[_BELOW]
            if below is None:
                frames.pop(frame, None)
            else:
                frames[frame] = below

    def _claim(
        self,
        owner: object,
        frame: FrameType | None,
        context: Callable[[], Iterable[object]] | None,
    ) -> list[Any]:
        """The entry an exit claims when the newest one of its frame is not it (see the module)."""
        claim = self.open_entries.pop
        if frame is not None:  # 1. the innermost open entry of the owner made from this frame
            candidate = self.frames.get(frame)
            while candidate is not None:
                if (
                    candidate[_OWNER] is owner
                    and not candidate[_CLOSED]
                    and claim(id(candidate), None) is not None
                ):
                    self._unindex(candidate)
                    return candidate
                candidate = candidate[_BELOW]
        if context is not None:  # 2. the innermost one on this context's stack
            for data in context():
                for candidate in list(self.open_entries.values()):
                    if (
                        candidate[_DATA] is data
                        and candidate[_OWNER] is owner
                        and claim(id(candidate), None) is not None
                    ):
                        self._unindex(candidate)
                        return candidate
        candidate = self._var.get()
        while candidate is not None:
            if (
                candidate[_OWNER] is owner
                and not candidate[_CLOSED]
                and claim(id(candidate), None) is not None
            ):
                self._unindex(candidate)
                return candidate
            candidate = candidate[_PREV]
        for candidate in list(self.open_entries.values()):  # 3. the oldest one anywhere
            if candidate[_OWNER] is owner and claim(id(candidate), None) is not None:
                self._unindex(candidate)
                return candidate
        raise RuntimeError(f"{owner!r} exited without a matching enter")
