"""Fallback: answer with a default value (or a handler's result) instead of failing.

```python
import resilient


@resilient.Fallback(value=[])
def recommendations(user: str) -> list[str]:
    raise ConnectionError("recommender down")


assert recommendations("ada") == []
```

Put it outermost in a `Pipeline` so that it also sees the rejections of the policies inside it
(an open breaker's `CircuitOpenError`, a full bulkhead, a rate limit, an exceeded deadline).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, Generic, TypeVar

from typing_extensions import ParamSpec

from . import _retry
from ._events import HUB, FallbackUsed
from ._policy import Policy, is_async_callable
from ._retry import _matcher, _name_of, _never_retried, _On

__all__ = ["Fallback"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"


_MISSING: Final = _Missing()


class _Untimed:
    """A stand-in for the event hub that never asks for a call's count or duration."""

    __slots__ = ("timing",)  # a slot: the C call reads it at a fixed offset, as the hub's

    def __init__(self) -> None:
        self.timing = False


_UNTIMED: Final = _Untimed()


class Fallback(Policy, Generic[T]):
    """Turn matching failures of a call into a fallback value, or a handler's result.

    When the call raises an exception that matches ``on``, the policy returns ``value``, or
    ``handler(exception)`` (a sync handler, or an async one for async calls; its own exceptions
    propagate). Rejections by resilient's policies (`CircuitOpenError`, `BulkheadFullError`,
    `RateLimitedError`, `DeadlineExceeded`) are exceptions like any other, so the default
    ``on=Exception`` covers them. Cancellation (asyncio, trio, anyio), `KeyboardInterrupt`,
    `SystemExit` and `GeneratorExit` are never replaced, whatever ``on`` says. Exceptions that
    do not match propagate unchanged.

    Works as a decorator on sync and async functions, through `call` / `acall`, and in a
    `Pipeline` (put it first, outermost). Emits `FallbackUsed` when it answers.

    Args:
        value: the value to return in place of a failure. Give exactly one of ``value`` and
            ``handler``; ``value=None`` is a valid fallback.
        handler: ``handler(exception)`` computes the fallback; it may be a coroutine function
            (then only async calls can use it: a sync call raises `TypeError`).
        on: which exceptions to replace: an exception type, a tuple of them or a predicate on
            the exception (default `Exception`).
        name: the name in events (default: the function's qualified name).

    Raises:
        TypeError: an argument has the wrong type, or neither / both of ``value`` and
            ``handler`` were given.
    """

    __slots__ = ("_async_handler", "_match", "handler", "name", "on", "value")

    kind = "fallback"

    def __init__(
        self,
        value: T | _Missing = _MISSING,
        *,
        handler: Callable[[BaseException], T | Awaitable[T]] | None = None,
        on: _On = Exception,
        name: str | None = None,
    ) -> None:
        if handler is None and value is _MISSING:
            raise TypeError("Fallback needs a value or a handler: Fallback(value=...)")
        if handler is not None:
            if value is not _MISSING:
                raise TypeError("give Fallback either value or handler, not both")
            if not callable(handler):
                raise TypeError(f"handler must be callable, got {handler!r}")
        self._match = _matcher(on)
        self.on = on
        #: The fallback value (None when a handler computes it).
        self.value: Any = None if value is _MISSING else value
        self.handler = handler
        self._async_handler = handler is not None and is_async_callable(handler)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {name!r}")
        self.name = name

    def __repr__(self) -> str:
        what = f"handler={self.handler!r}" if self.handler is not None else f"value={self.value!r}"
        return f"Fallback({what}, on={self.on!r}, name={self.name!r})"

    def _replaces(self, error: BaseException) -> bool:
        return self._match(error) and not _never_retried(error)

    def _used(self, error: BaseException, name: str) -> None:
        HUB.emit(FallbackUsed(self.kind, name, error))

    # -- sync -----------------------------------------------------------------------------------

    def _answer(self, error: BaseException, name: str) -> Any:
        """The fallback for ``error`` in a sync call."""
        if HUB.active:
            self._used(error, name)
        handler = self.handler
        if handler is None:
            return self.value
        if self._async_handler:
            raise TypeError(
                f"the Fallback handler {handler!r} is async: use it on async calls only"
            ) from error
        result = handler(error)
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()  # no "never awaited" warning
            raise TypeError(
                f"the Fallback handler {handler!r} returned an awaitable in a sync call"
            ) from error
        return result

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)``; return the fallback if it raises a matching exception."""
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            if not self._replaces(exc):
                raise
            return self._answer(exc, self.name or _name_of(fn, args))  # type: ignore[no-any-return]

    def _wrap_sync(self, fn: Callable[P, R]) -> Callable[P, R]:
        name = self.name if self.name is not None else _name_of(fn)
        replaces = self._replaces
        answer = self._answer

        def failed(error: BaseException) -> Any:
            if not replaces(error):
                raise error
            return answer(error, name)

        speedups = _retry._speedups
        if speedups is not None:
            # The same call guarded in C (`RetryCall` with a hub that never asks for timing):
            # on success only ``fn`` runs; a raise is handed to `failed`, as below.
            def handed(*handed_over: Any) -> Any:  # (fn, args, kwargs, error, None, 0.0, name)
                return failed(handed_over[3])

            native: Callable[P, R] = speedups.RetryCall(
                fn=fn,
                slow=handed,
                run=handed,
                policy=self,
                name=name,
                key=(self.kind, name),
                hub=_UNTIMED,
                system=False,
                timed=handed,
                counted=handed,
                clocked=handed,
                fold=handed,
                fold_at=1,
            )
            return native

        # The success path is this one call and nothing else (two closure cells).
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except BaseException as exc:
                return failed(exc)  # type: ignore[no-any-return]

        return wrapper

    # -- async ----------------------------------------------------------------------------------

    async def _aanswer(self, error: BaseException, name: str) -> Any:
        """The fallback for ``error`` in an async call."""
        if HUB.active:
            self._used(error, name)
        handler = self.handler
        if handler is None:
            return self.value
        result = handler(error)
        if inspect.isawaitable(result):
            return await result
        return result

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)``; return the fallback if it raises a matching exception."""
        try:
            return await fn(*args, **kwargs)
        except BaseException as exc:
            if not self._replaces(exc):
                raise
            error = exc
        return await self._aanswer(error, self.name or _name_of(fn, args))  # type: ignore[no-any-return]

    def _wrap_async(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        name = self.name if self.name is not None else _name_of(fn)
        replaces = self._replaces
        answer = self._aanswer

        async def failed(error: BaseException) -> Any:
            if not replaces(error):
                raise error
            return await answer(error, name)

        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await fn(*args, **kwargs)
            except BaseException as exc:
                error = exc
            return await failed(error)  # type: ignore[no-any-return]

        return wrapper
