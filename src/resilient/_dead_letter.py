"""Dead-letter queues: park the messages a handler could not process, replay them later.

```python
from resilient import DeadLetterQueue
from resilient.stores import MemoryStore

dlq = DeadLetterQueue("orders", store=MemoryStore())


@dlq.capture(on=ValueError)
def handle(order_id: int, amount: float) -> None:
    if amount < 0:
        raise ValueError("negative amount")


handle(1, 9.5)  # processed
handle(2, -1.0)  # parked: returns None, so the consumer can acknowledge the message
assert dlq.count() == 1
assert dlq.list(10)[0].args == [2, -1.0]
```

`capture` stores the call's arguments as JSON through pydantic (never pickle), with the
exception's type, message and traceback, the time and an attempt count. A message that cannot
be parked (the store is down, the arguments do not encode, the queue is full) is never
swallowed: the original exception propagates, with the reason attached as a note.

`replay` drives parked messages through a handler (by default the captured function itself):
a success removes the entry, a failure keeps it with one more attempt and its new error, and a
payload that no longer validates against the handler's annotations stays parked and is
reported. With a `RedisStore` the queue is a Redis Stream with a consumer group, so a replay
that dies midway loses nothing: its entries are claimed again by the next one.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import json
import os
import sys
import time
import traceback
import typing
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast, overload

from typing_extensions import ParamSpec

from ._errors import StoreUnavailable
from ._events import HUB, DeadLettered, StoreError
from ._policy import is_async_callable
from ._rate_limit import _check_int, _check_name, _check_seconds
from ._retry import _matcher, _never_retried, _On

__all__ = ["Capturing", "DeadLetter", "DeadLetterQueue", "ReplayResult"]

P = ParamSpec("P")
R = TypeVar("R")

#: True while a replay runs: a captured function that fails then raises instead of parking
#: (again), so the replay sees the failure and keeps the entry.
_replaying: ContextVar[bool] = ContextVar("resilient.dead_letter.replaying", default=False)

_MAX_TRACEBACK = 32_000  # characters of traceback text kept per entry
_BATCH = 50  # entries handed to a replay at a time


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One parked message, as `DeadLetterQueue.list` and `DeadLetterQueue.replay` report it.

    Attributes:
        id: the entry's id in the queue (a Redis Stream id, or one shaped like it).
        function: ``module:qualified_name`` of the function that failed.
        args: the positional arguments, as JSON values.
        kwargs: the keyword arguments, as JSON values.
        error_type: ``module.QualifiedName`` of the last exception.
        error: the last exception's message.
        traceback: the last exception's formatted traceback.
        time: when the last failure happened (Unix time, seconds).
        attempts: how many times processing failed: 1 when parked, one more per failed replay.
    """

    id: str
    function: str
    args: list[Any]
    kwargs: dict[str, Any]
    error_type: str
    error: str
    traceback: str
    time: float
    attempts: int
    payload: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did.

    Attributes:
        replayed: how many entries the handler processed (they were removed).
        failed: the entries whose handler raised again; they stay parked, with the new error
            and one more attempt.
        invalid: the entries that could not be handed to the handler: the payload no longer
            validates against its annotations, or there is no handler for their function.
            They stay parked, with the reason as their error.
    """

    replayed: int = 0
    failed: tuple[DeadLetter, ...] = ()
    invalid: tuple[DeadLetter, ...] = ()


class _Codec:
    """How one function's arguments become JSON and back, through pydantic TypeAdapters."""

    __slots__ = ("adapters", "signature")

    def __init__(self, fn: Callable[..., Any]) -> None:
        from pydantic import TypeAdapter

        self.signature = inspect.signature(fn)
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # unresolvable annotations: encode what the values are
            hints = {}
        self.adapters: dict[str, Any] = {}
        for name, parameter in self.signature.parameters.items():
            hint: Any = hints.get(name, Any)
            if parameter.kind is parameter.VAR_POSITIONAL:
                hint = tuple[hint, ...]
            elif parameter.kind is parameter.VAR_KEYWORD:
                hint = dict[str, hint]
            self.adapters[name] = TypeAdapter(hint)

    def encode(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        bound = self.signature.bind(*args, **kwargs)
        adapters = self.adapters
        encoded = {
            name: adapters[name].dump_python(value, mode="json")
            for name, value in bound.arguments.items()
        }
        rebound = inspect.BoundArguments(self.signature, encoded)
        return json.dumps({"args": list(rebound.args), "kwargs": rebound.kwargs})

    def decode(self, args: list[Any], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        bound = self.signature.bind(*args, **kwargs)
        adapters = self.adapters
        for name, value in bound.arguments.items():
            bound.arguments[name] = adapters[name].validate_json(json.dumps(value))
        return bound


def _qualified(fn: Any) -> str:
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}:{name}"


def _type_name(error: BaseException) -> str:
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}"


def _traceback_text(error: BaseException) -> str:
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return text if len(text) <= _MAX_TRACEBACK else "...\n" + text[-_MAX_TRACEBACK:]


def _add_note(error: BaseException, note: str) -> None:
    if sys.version_info >= (3, 11):
        error.add_note(note)
    else:  # pragma: no cover - Python 3.10
        notes = getattr(error, "__notes__", None)
        if not isinstance(notes, list):
            notes = []
        notes.append(note)
        error.__notes__ = notes  # type: ignore[attr-defined]


def _entry(raw: tuple[str, dict[str, str], str | None]) -> DeadLetter:
    """A `DeadLetter` from a backend's (id, fields, failure record) triple."""
    entry_id, fields, failure = raw
    state: dict[str, Any] = {
        "error_type": fields.get("error_type", ""),
        "error": fields.get("error", ""),
        "traceback": fields.get("traceback", ""),
        "time": fields.get("time", "0"),
        "attempts": fields.get("attempts", "1"),
    }
    if failure:
        try:
            record = json.loads(failure)
        except ValueError:
            record = {}
        if isinstance(record, dict):
            state.update({k: v for k, v in record.items() if k in state})
    payload = fields.get("payload", "")
    try:
        data = json.loads(payload)
        args = data["args"] if isinstance(data["args"], list) else []
        kwargs = data["kwargs"] if isinstance(data["kwargs"], dict) else {}
    except (ValueError, KeyError, TypeError):
        args, kwargs = [], {}
    try:
        when, attempts = float(state["time"]), int(state["attempts"])
    except (TypeError, ValueError):
        when, attempts = 0.0, 1
    return DeadLetter(
        id=entry_id,
        function=fields.get("function", ""),
        args=args,
        kwargs=kwargs,
        error_type=str(state["error_type"]),
        error=str(state["error"]),
        traceback=str(state["traceback"]),
        time=when,
        attempts=attempts,
        payload=payload,
    )


def _failure(entry: DeadLetter, error: BaseException | None, attempts: int) -> DeadLetter:
    """``entry`` after a failed replay (``error``), or unchanged but for ``attempts``."""
    if error is None:
        return DeadLetter(
            entry.id,
            entry.function,
            entry.args,
            entry.kwargs,
            entry.error_type,
            entry.error,
            entry.traceback,
            entry.time,
            attempts,
            entry.payload,
        )
    return DeadLetter(
        entry.id,
        entry.function,
        entry.args,
        entry.kwargs,
        _type_name(error.__cause__ or error if isinstance(error, _Invalid) else error),
        str(error),
        _traceback_text(error),
        time.time(),
        attempts,
        entry.payload,
    )


def _record(entry: DeadLetter) -> str:
    return json.dumps(
        {
            "attempts": entry.attempts,
            "error_type": entry.error_type,
            "error": entry.error,
            "traceback": entry.traceback,
            "time": entry.time,
        }
    )


class Capturing(Protocol):
    """What `DeadLetterQueue.capture` returns: a decorator that keeps the signature.

    The decorated function returns what it did, or ``None`` for a message that was parked.
    """

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]], /
    ) -> Callable[P, Coroutine[Any, Any, R | None]]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R | None]: ...


class _Invalid(Exception):
    """The entry cannot be handed to the handler (no handler, payload does not validate)."""


class DeadLetterQueue:
    """A queue where messages that their handler could not process are parked for later.

    Decorate a message handler with `capture`: when it raises (after any inner policy such as
    a retry gave up), the call's arguments and the error are parked and the call returns
    ``None``, so a consumer acknowledges the message and moves on: a poison message does not
    block the queue. Later, once a fix is deployed, `replay` drives the parked messages through
    the handler again.

    Args:
        name: the queue's name (its key in the store).
        store: a `resilient.stores.MemoryStore` (one process; nothing survives it) or a
            `resilient.stores.RedisStore` (a Redis Stream shared by every process; entries
            have no TTL).
        max_length: the most entries the queue holds (default 100,000). A full queue refuses
            new entries (`capture` re-raises); it never drops old ones.
        claim_after: seconds an entry must have been held by a replay that stopped answering
            before another replay takes it over (default 30; Redis only).

    Raises:
        TypeError: an argument has the wrong type, or ``store`` is not a resilient store.
        ValueError: ``name``, ``max_length`` or ``claim_after`` is out of range.
    """

    __slots__ = ("_backend", "_claim_after_ms", "_codecs", "_functions", "max_length", "name")

    kind = "dead_letter"

    def __init__(
        self,
        name: str,
        *,
        store: Any,
        max_length: int = 100_000,
        claim_after: float = 30.0,
    ) -> None:
        self.name = _check_name(name)
        self.max_length = _check_int(max_length, "max_length")
        self._claim_after_ms = int(_check_seconds(claim_after, "claim_after") * 1000)
        bind = getattr(store, "_bind_dead_letters", None)
        if bind is None:
            raise TypeError(
                "store must be a resilient.stores.MemoryStore or RedisStore, "
                f"got {type(store).__name__}"
            )
        self._backend = bind(self)
        self._functions: dict[str, Callable[..., Any]] = {}
        self._codecs: dict[Any, _Codec] = {}

    def __repr__(self) -> str:
        return f"DeadLetterQueue({self.name!r}, max_length={self.max_length!r})"

    # -- capture --------------------------------------------------------------------------------

    def capture(self, on: _On = Exception, reraise: bool = False) -> Capturing:
        """A decorator that parks the calls of a sync or async function that fail.

        On success the decorated function costs one more function call, nothing else.
        When it raises an exception matching ``on`` (cancellation, `KeyboardInterrupt` and
        `SystemExit` never match), its arguments and the error are parked and the call returns
        ``None`` (``reraise=True``: re-raises the exception after parking it). If the message
        cannot be parked, the original exception propagates with the reason as a note. During
        `replay`, a captured function that fails raises instead of parking again.

        Args:
            on: an exception type, a tuple of them or a predicate (default `Exception`).
            reraise: re-raise the exception once the message is parked.
        """
        match = _matcher(on)
        reraise = bool(reraise)

        def decorate(fn: Callable[P, R]) -> Callable[P, R | None]:
            if isinstance(fn, staticmethod):  # decorated above @staticmethod: wrap the function
                return staticmethod(decorate(fn.__func__))
            if not callable(fn):
                raise TypeError(f"capture decorates callables, got {fn!r}")
            if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
                raise TypeError(f"capture cannot decorate the generator function {fn!r}")
            function = _qualified(fn)
            self._functions[function] = fn
            if is_async_callable(fn):
                return self._capture_async(fn, function, match, reraise)  # type: ignore[arg-type, return-value]
            park = self._park

            def failed(error: BaseException, args: Any, kwargs: Any) -> None:
                if not match(error) or _never_retried(error) or _replaying.get():
                    raise error
                park(fn, function, error, args, kwargs)
                if reraise:
                    raise error

            # The success path is this one call and nothing else (two closure cells).
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
                try:
                    return fn(*args, **kwargs)
                except BaseException as exc:
                    return failed(exc, args, kwargs)  # type: ignore[func-returns-value]

            return functools.update_wrapper(wrapper, fn)

        return cast(Capturing, decorate)

    def _capture_async(
        self,
        fn: Callable[P, Awaitable[R]],
        function: str,
        match: Callable[[BaseException], bool],
        reraise: bool,
    ) -> Callable[P, Coroutine[Any, Any, R | None]]:
        apark = self._apark

        async def failed(error: BaseException, args: Any, kwargs: Any) -> None:
            if not match(error) or _never_retried(error) or _replaying.get():
                raise error
            await apark(fn, function, error, args, kwargs)
            if reraise:
                raise error

        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
            try:
                return await fn(*args, **kwargs)
            except BaseException as exc:
                error = exc
            return await failed(error, args, kwargs)  # type: ignore[func-returns-value]

        return functools.update_wrapper(wrapper, fn)

    def _fields(
        self,
        fn: Callable[..., Any],
        function: str,
        error: BaseException,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> dict[str, str]:
        codec = self._codecs.get(fn)
        if codec is None:
            codec = self._codecs[fn] = _Codec(fn)
        return {
            "function": function,
            "payload": codec.encode(args, kwargs),
            "error_type": _type_name(error),
            "error": str(error),
            "traceback": _traceback_text(error),
            "time": repr(time.time()),
            "attempts": "1",
        }

    def _not_parked(self, error: BaseException, reason: BaseException | str) -> BaseException:
        if isinstance(reason, StoreUnavailable) and HUB.active:
            HUB.emit(StoreError(self.kind, self.name, "capture", reason, "raise"))
        _add_note(error, f"not parked in the dead-letter queue {self.name!r}: {reason}")
        return error

    def _parked(self, error: BaseException, entry_id: str | None) -> BaseException | None:
        if entry_id is None:
            return self._not_parked(error, f"the queue is full (max_length={self.max_length})")
        if HUB.active:
            HUB.emit(DeadLettered(self.kind, self.name, entry_id, error))
        return None

    def _park(
        self,
        fn: Callable[..., Any],
        function: str,
        error: BaseException,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        failed: BaseException | None
        try:
            entry_id = self._backend.add(self._fields(fn, function, error, args, kwargs))
        except Exception as reason:
            failed = self._not_parked(error, reason)
        else:
            failed = self._parked(error, entry_id)
        if failed is not None:
            raise failed

    async def _apark(
        self,
        fn: Callable[..., Any],
        function: str,
        error: BaseException,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        failed: BaseException | None
        try:
            entry_id = await self._backend.aadd(self._fields(fn, function, error, args, kwargs))
        except Exception as reason:
            failed = self._not_parked(error, reason)
        else:
            failed = self._parked(error, entry_id)
        if failed is not None:
            raise failed

    # -- reading and purging --------------------------------------------------------------------

    def list(self, limit: int = 100) -> list[DeadLetter]:
        """Up to ``limit`` parked entries, oldest first."""
        return [_entry(raw) for raw in self._backend.list(_check_int(limit, "limit"))]

    async def alist(self, limit: int = 100) -> builtins.list[DeadLetter]:
        """Async `list`."""
        return [_entry(raw) for raw in await self._backend.alist(_check_int(limit, "limit"))]

    def count(self) -> int:
        """The number of parked entries."""
        return int(self._backend.count())

    async def acount(self) -> int:
        """Async `count`."""
        return int(await self._backend.acount())

    def purge(self) -> int:
        """Delete every parked entry; returns how many there were."""
        return int(self._backend.purge())

    async def apurge(self) -> int:
        """Async `purge`."""
        return int(await self._backend.apurge())

    # -- replay ---------------------------------------------------------------------------------

    def _prepare(
        self, entry: DeadLetter, handler: Callable[..., Any] | None
    ) -> tuple[Callable[..., Any], inspect.BoundArguments]:
        """The handler for ``entry`` and its validated arguments, or `_Invalid`."""
        target = handler if handler is not None else self._functions.get(entry.function)
        if target is None:
            raise _Invalid(
                f"no handler for {entry.function}: pass handler=, or capture it with this queue"
            )
        codec = self._codecs.get(target)
        if codec is None:
            try:
                codec = self._codecs[target] = _Codec(target)
            except (TypeError, ValueError) as error:
                raise _Invalid(f"cannot read the handler's signature: {error}") from error
        if not entry.payload:
            raise _Invalid("the entry has no payload")
        try:
            return target, codec.decode(entry.args, entry.kwargs)
        except Exception as error:  # TypeError (arity) or pydantic's ValidationError
            raise _Invalid(f"the payload no longer validates: {error}") from error

    @staticmethod
    def _check_replay(handler: object, limit: object) -> int | None:
        if handler is not None and not callable(handler):
            raise TypeError(f"handler must be callable or None, got {handler!r}")
        return None if limit is None else _check_int(limit, "limit")

    @staticmethod
    def _consumer() -> str:
        import socket
        import uuid

        return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def replay(
        self,
        handler: Callable[..., Any] | None = None,
        limit: int | None = None,
        *,
        progress: Callable[[DeadLetter, str], object] | None = None,
    ) -> ReplayResult:
        """Drive parked entries through ``handler``; a success removes the entry.

        Args:
            handler: called with the entry's arguments, validated against its annotations;
                default: the function captured with this queue that parked the entry. A
                sync replay needs a sync handler (use `areplay` for async ones).
            limit: the most entries to handle (default: all; with Redis, also those parked while
                the replay runs).
            progress: called after each entry with it and its outcome, ``"replayed"``,
                ``"failed"`` or ``"invalid"``.

        Returns:
            A `ReplayResult`: how many were replayed, and the entries that stay parked.
        """
        remaining = self._check_replay(handler, limit)
        if handler is not None and is_async_callable(handler):
            raise TypeError("replay() needs a sync handler; await areplay() for an async one")
        backend = self._backend
        run = backend.start(self._consumer(), self._claim_after_ms)
        outcome = _Outcome()
        token = _replaying.set(True)
        try:
            while remaining is None or remaining > 0:
                batch = backend.take(run, _BATCH if remaining is None else min(_BATCH, remaining))
                if not batch:
                    break
                for index, raw in enumerate(batch):
                    try:
                        entry = _entry(raw)
                        if not outcome.first(entry):
                            backend.fail(entry.id, _record(entry))  # seen in this run
                            continue
                        try:
                            target, bound = self._prepare(entry, handler)
                            result = target(*bound.args, **bound.kwargs)
                            if inspect.isawaitable(result):
                                getattr(result, "close", lambda: None)()
                                raise TypeError("the handler returned an awaitable in replay()")
                        except _Invalid as error:
                            kept = _failure(entry, error, entry.attempts + 1)
                            backend.fail(entry.id, _record(kept))
                            outcome.add(kept, "invalid", progress)
                        except Exception as error:
                            kept = _failure(entry, error, entry.attempts + 1)
                            backend.fail(entry.id, _record(kept))
                            outcome.add(kept, "failed", progress)
                        else:
                            backend.ack(entry.id)
                            outcome.add(entry, "replayed", progress)
                    except BaseException:
                        backend.release([item[0] for item in batch[index:]])
                        raise
                if remaining is not None:
                    remaining -= len(batch)
        finally:
            _replaying.reset(token)
        return outcome.result()

    async def areplay(
        self,
        handler: Callable[..., Any] | None = None,
        limit: int | None = None,
        *,
        progress: Callable[[DeadLetter, str], object] | None = None,
    ) -> ReplayResult:
        """Async `replay`; ``handler`` may be sync or async."""
        remaining = self._check_replay(handler, limit)
        backend = self._backend
        run = await backend.astart(self._consumer(), self._claim_after_ms)
        outcome = _Outcome()
        token = _replaying.set(True)
        try:
            while remaining is None or remaining > 0:
                count = _BATCH if remaining is None else min(_BATCH, remaining)
                batch = await backend.atake(run, count)
                if not batch:
                    break
                for index, raw in enumerate(batch):
                    try:
                        entry = _entry(raw)
                        if not outcome.first(entry):
                            await backend.afail(entry.id, _record(entry))
                            continue
                        try:
                            target, bound = self._prepare(entry, handler)
                            result = target(*bound.args, **bound.kwargs)
                            if inspect.isawaitable(result):
                                await result
                        except _Invalid as error:
                            kept = _failure(entry, error, entry.attempts + 1)
                            await backend.afail(entry.id, _record(kept))
                            outcome.add(kept, "invalid", progress)
                        except Exception as error:
                            kept = _failure(entry, error, entry.attempts + 1)
                            await backend.afail(entry.id, _record(kept))
                            outcome.add(kept, "failed", progress)
                        else:
                            await backend.aack(entry.id)
                            outcome.add(entry, "replayed", progress)
                    except BaseException:
                        await backend.arelease([item[0] for item in batch[index:]])
                        raise
                if remaining is not None:
                    remaining -= len(batch)
        finally:
            _replaying.reset(token)
        return outcome.result()


class _Outcome:
    """Tallies one replay run."""

    __slots__ = ("failed", "invalid", "replayed", "seen")

    def __init__(self) -> None:
        self.replayed = 0
        self.failed: list[DeadLetter] = []
        self.invalid: list[DeadLetter] = []
        self.seen: set[str] = set()

    def first(self, entry: DeadLetter) -> bool:
        """Whether this run meets ``entry`` for the first time (a run handles each once)."""
        if entry.id in self.seen:
            return False
        self.seen.add(entry.id)
        return True

    def add(
        self, entry: DeadLetter, outcome: str, progress: Callable[[DeadLetter, str], object] | None
    ) -> None:
        if outcome == "replayed":
            self.replayed += 1
        elif outcome == "failed":
            self.failed.append(entry)
        else:
            self.invalid.append(entry)
        if progress is not None:
            progress(entry, outcome)

    def result(self) -> ReplayResult:
        return ReplayResult(self.replayed, tuple(self.failed), tuple(self.invalid))
