"""The policy model: every pattern is a `Policy`, and `Pipeline` composes them.

A policy runs a function on the caller's behalf, in one of three ways::

    @policy                                  # decorator, sync or async, signature kept
    def f(x: int) -> str: ...

    policy.call(f, 1)                        # explicit call
    await policy.acall(async_f, 1)           # explicit async call

Subclasses implement `Policy.call` and `Policy.acall`. They may also override `_wrap_sync` /
`_wrap_async` to hand the decorator a faster closure than the generic one.

`Pipeline(p1, p2, ..., pn)` nests policies with ``p1`` outermost, as Polly does: the fallback
goes first, then an overall timeout, then retry, then the breaker, and so on. It does so without
building closures per call: ``p1.call(p2.call, p3.call, fn, *args)`` makes ``p1`` call
``p2.call(p3.call, fn, *args)``, which calls ``p3.call(fn, *args)``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, ExitStack
from types import TracebackType
from typing import Any, TypeVar, overload

from typing_extensions import ParamSpec, Self

from ._scopes import ScopeStack, caller_frame

__all__ = ["Pipeline", "Policy", "is_async_callable"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

#: The open ``with pipeline:`` blocks of this context, and the stack that will exit them.
_PIPELINE_BLOCKS: ScopeStack[ExitStack] = ScopeStack("resilient.pipeline_blocks")
_ASYNC_PIPELINE_BLOCKS: ScopeStack[AsyncExitStack] = ScopeStack("resilient.async_pipeline_blocks")


def is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` returns a coroutine (async functions, partials, async __call__)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an instance with an async __call__
    )


class Policy:
    """Base class of every resilience policy.

    A policy is a decorator (``@policy``) for sync and async functions and methods, and has
    explicit `call` / `acall` forms. Policies that guard a block (timeouts, circuit breakers,
    bulkheads, rate limiters) also support ``with`` and ``async with``.

    One policy object may be shared by any number of threads and tasks, and may be built at
    import time, before any event loop exists.
    """

    __slots__ = ("__weakref__",)  # instrumentation keeps weak references to some policies

    #: The kind of policy, used in events and metrics (``"retry"``, ``"circuit_breaker"``...).
    kind: str = "policy"

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` under this policy and return its result."""
        raise NotImplementedError

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` under this policy and return its result."""
        raise NotImplementedError

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]], /
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R]: ...

    def __call__(self, fn: Callable[P, Any], /) -> Callable[P, Any]:
        """Decorate ``fn`` so that every call to it runs under this policy.

        The wrapper keeps ``fn``'s signature for type checkers and its metadata
        (``functools.wraps``). Coroutine functions get an async wrapper.
        """
        if isinstance(fn, (staticmethod, classmethod)):
            # Decorated above @staticmethod / @classmethod: guard the function inside and wrap
            # it the same way again, so that binding still works.
            return type(fn)(self(fn.__func__))
        if not callable(fn):
            raise TypeError(f"{type(self).__name__} decorates callables, got {fn!r}")
        if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
            raise TypeError(
                f"{type(self).__name__} cannot decorate the generator function {fn!r}: "
                "the policy would only guard the creation of the generator"
            )
        wrapper = self._wrap_async(fn) if is_async_callable(fn) else self._wrap_sync(fn)
        functools.update_wrapper(wrapper, fn)
        return wrapper

    def _wrap_sync(self, fn: Callable[P, R]) -> Callable[P, R]:
        call = self.call

        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return call(fn, *args, **kwargs)

        return wrapper

    def _wrap_async(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        acall = self.acall

        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return await acall(fn, *args, **kwargs)

        return wrapper


class Pipeline(Policy):
    """Several policies applied as one; the first is outermost.

    ``Pipeline(fallback, timeout, retry, breaker)`` runs a call as
    ``fallback(timeout(retry(breaker(fn))))``. A Pipeline is itself a policy, so it can be used as
    a decorator, with `call` / `acall`, or inside another Pipeline. An empty Pipeline simply
    calls the function. `get` finds a member by type; ``with pipeline:`` and ``async with
    pipeline:`` work when every member guards a block.

    Args:
        *policies: the policies, outermost first.
        name: a name for the pipeline, e.g. the key it was loaded under from configuration.
    """

    __slots__ = ("_inner_acalls", "_inner_calls", "name", "policies")

    kind = "pipeline"

    def __init__(self, *policies: Policy, name: str | None = None) -> None:
        for index, policy in enumerate(policies):
            if not isinstance(policy, Policy):
                raise TypeError(f"policies[{index}] must be a resilient policy, got {policy!r}")
        self.policies: tuple[Policy, ...] = policies
        self.name = name if name is not None else "pipeline"
        self._inner_calls = tuple(p.call for p in policies[1:])
        self._inner_acalls = tuple(p.acall for p in policies[1:])

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` through every policy, outermost first."""
        if not self.policies:
            return fn(*args, **kwargs)
        outer: Callable[..., R] = self.policies[0].call
        return outer(*self._inner_calls, fn, *args, **kwargs)

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` through every policy, outermost first."""
        if not self.policies:
            return await fn(*args, **kwargs)
        outer: Callable[..., Awaitable[R]] = self.policies[0].acall
        return await outer(*self._inner_acalls, fn, *args, **kwargs)

    def get(self, kind: type[T]) -> T | None:
        """The first member that is an instance of ``kind``, or None.

        Nested pipelines are searched too, in order, so ``pipeline.get(CircuitBreaker)`` finds
        the breaker wherever the pipeline was built from (``load_policies`` included).

        Raises:
            TypeError: ``kind`` is not a class.
        """
        if not isinstance(kind, type):
            raise TypeError(f"kind must be a class, e.g. CircuitBreaker, got {kind!r}")
        for policy in self.policies:
            if isinstance(policy, kind):
                return policy
            if isinstance(policy, Pipeline):
                found = policy.get(kind)
                if found is not None:
                    return found
        return None

    def _check_guards(self, method: str) -> None:
        for index, policy in enumerate(self.policies):
            if isinstance(policy, Pipeline):
                policy._check_guards(method)
            elif getattr(type(policy), method, None) is None:
                form = "async with" if method == "__aenter__" else "with"
                raise TypeError(
                    f"cannot use `{form}` on {self!r}: its member policies[{index}], {policy!r}, "
                    f"does not guard a block (timeouts, circuit breakers, bulkheads and rate "
                    f"limiters do); decorate the function or use call() / acall() instead"
                )

    def __enter__(self) -> Self:
        """Enter every member's block, outermost first (``with pipeline:``).

        Raises:
            TypeError: a member cannot guard a block (a retry, for one: a block cannot run
                twice); nothing is entered then.
        """
        self._check_guards("__enter__")
        stack = ExitStack()
        with ExitStack() as unwind:  # if a member's enter fails, exit those already entered
            unwind.push(stack)
            for policy in self.policies:
                stack.enter_context(policy)  # type: ignore[arg-type]
            unwind.pop_all()
        _PIPELINE_BLOCKS.push(self, stack, caller_frame(1))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return bool(_PIPELINE_BLOCKS.pop(self, caller_frame(1)).__exit__(exc_type, exc, tb))

    async def __aenter__(self) -> Self:
        """Enter every member's block, outermost first (``async with pipeline:``).

        Raises:
            TypeError: a member cannot guard a block; nothing is entered then.
        """
        self._check_guards("__aenter__")
        stack = AsyncExitStack()
        async with AsyncExitStack() as unwind:
            unwind.push_async_exit(stack)
            for policy in self.policies:
                await stack.enter_async_context(policy)  # type: ignore[arg-type]
            unwind.pop_all()
        _ASYNC_PIPELINE_BLOCKS.push(self, stack, caller_frame(1))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return bool(
            await _ASYNC_PIPELINE_BLOCKS.pop(self, caller_frame(1)).__aexit__(exc_type, exc, tb)
        )

    def __len__(self) -> int:
        return len(self.policies)

    def __iter__(self) -> Any:
        return iter(self.policies)

    def __repr__(self) -> str:
        inner = ", ".join(repr(p) for p in self.policies)
        return (
            f"Pipeline({inner})"
            if self.name == "pipeline"
            else f"Pipeline({inner}, name={self.name!r})"
        )
