"""Which policy blocks are open in this context: a stack per task or thread, in a ContextVar.

Policies used as ``with`` / ``async with`` keep what ``__exit__`` needs (a permit, a start
time) here rather than on the policy object, so one policy can be entered by many threads and
tasks at once, and nested in itself.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["ScopeStack"]


class _Frame(Generic[T]):
    __slots__ = ("data", "owner", "prev")

    def __init__(self, owner: object, data: T, prev: _Frame[T] | None) -> None:
        self.owner = owner
        self.data = data
        self.prev = prev


class ScopeStack(Generic[T]):
    """The open blocks of one kind of policy, innermost first, per context."""

    __slots__ = ("_var",)

    def __init__(self, name: str) -> None:
        self._var: ContextVar[_Frame[T] | None] = ContextVar(name, default=None)

    def push(self, owner: object, data: T) -> None:
        """Record that ``owner``'s block was entered, with what its exit will need."""
        var = self._var
        var.set(_Frame(owner, data, var.get()))

    def pop(self, owner: object) -> T:
        """Forget ``owner``'s innermost block and return its data.

        Raises:
            RuntimeError: the innermost block open in this context is not ``owner``'s.
        """
        var = self._var
        frame = var.get()
        if frame is None or frame.owner is not owner:
            raise RuntimeError(f"{owner!r} exited without a matching enter in this context")
        var.set(frame.prev)
        return frame.data
