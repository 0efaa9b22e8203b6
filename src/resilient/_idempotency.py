"""Idempotency keys: run a call once per key, and give every later caller the stored result.

```python
from dataclasses import dataclass

import resilient
from resilient.stores import MemoryStore


@dataclass
class Receipt:
    order_id: str
    amount: int


@resilient.idempotent(store=MemoryStore(), key=lambda order_id, amount: order_id)
def charge(order_id: str, amount: int) -> Receipt:
    return Receipt(order_id, amount)


first = charge("order-1", 5)
assert charge("order-1", amount=5) == first      # replayed from the store, not run again
```

How it works, per call:

1. **Claim.** The key (``key(*args, **kwargs)``, hashed with SHA-256 and namespaced by the
   function's module and qualified name) is claimed atomically with a lease of
   ``lock_timeout`` seconds and a random owner token, together with a fingerprint of the
   arguments (a SHA-256 of the arguments bound to the signature). One step of the store: a Lua
   script in Redis, a lock-guarded dict entry in memory.
2. The store answers one of: *claimed* (run the function), *done* (the stored result, decoded
   and returned: a replay), *in progress* (another caller holds the lease: poll until it is done
   or ``wait`` runs out) or *reused* (the key was claimed with other arguments).
3. **Complete.** The result is encoded as JSON (a pydantic `TypeAdapter` of ``result_type`` or
   the return annotation) and stored for ``ttl`` seconds, only if the owner token still holds
   the lease (compare-and-set). If the lease ran out first, `IdempotencyLeaseLost` is raised
   and nothing is overwritten.
4. **Release.** If the function raises (or the result cannot be encoded), the key is released,
   owner-checked, so that a retry runs again.

Claim, complete and release run in a shielded cancel scope in async code, so a cancellation
cannot leave one half done: it takes effect right after the step.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import os
import typing
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
from typing_extensions import ParamSpec

from ._clock import Clock, check_clock
from ._deadline import get_deadline
from ._errors import (
    IdempotencyInProgress,
    IdempotencyKeyReused,
    IdempotencyLeaseLost,
    StoreUnavailable,
)
from ._events import HUB, IdempotencyLeaseLostEvent, IdempotentReplay, StoreError
from ._policy import Policy
from ._rate_limit import _check_max_wait, _check_seconds

if TYPE_CHECKING:
    from .stores._memory import MemoryStore
    from .stores._redis import RedisStore

__all__ = [
    "CLAIMED",
    "DONE",
    "IN_PROGRESS",
    "REUSED",
    "Idempotent",
    "IdempotencyBackend",
    "idempotent",
]

P = ParamSpec("P")
R = TypeVar("R")

#: What a claim found (the first item of the store's reply).
CLAIMED = 0  # the caller holds the lease now: run
DONE = 1  # a result is stored: (DONE, result bytes)
IN_PROGRESS = 2  # another caller holds the lease: (IN_PROGRESS, seconds left on it)
REUSED = 3  # the key was claimed with another fingerprint

_POLL_FIRST = 0.005  # seconds between polls of a duplicate waiting for the first call
_POLL_MAX = 0.25
_urandom = os.urandom
_PLAIN = frozenset({str, int, float, bool, type(None)})


def _short_input_sha256() -> Callable[..., Any]:
    """CPython's own SHA-256 constructor when it has one, else hashlib's (OpenSSL's).

    For the few dozen bytes of a key and its arguments it starts faster than OpenSSL's; the
    digests are the same.
    """
    import importlib

    for name in ("_sha2", "_sha256"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        constructor: Callable[..., Any] = module.sha256
        return constructor
    return hashlib.sha256


_key_sha256 = _short_input_sha256()

#: The longest key, and argument encoding, that a store local to this process holds as it is.
EXACT_MAX = 64
# The ints held as they are in an exact fingerprint (a bigger one is encoded).
_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1


def exact_key(prefix: str, user_key: str) -> str:
    """The storage key of ``user_key`` for a store local to this process (memory).

    Nothing a memory store holds leaves the process, so no digest is needed to compare keys:
    a key of at most `EXACT_MAX` characters is held as it is after ``prefix``, a longer one as
    ``"#"`` and its SHA-256 hex digest (65 characters, so never equal to a short key).
    """
    if len(user_key) <= EXACT_MAX:
        return prefix + user_key
    digest: str = _key_sha256(user_key.encode()).hexdigest()
    return prefix + "#" + digest


def held_as_they_are(values: tuple[Any, ...]) -> bool:
    """Whether `exact_fingerprint` holds ``values`` as they are (see there).

    ``resilient._speedups.held_as_they_are`` is the same test in C.
    """
    room = EXACT_MAX
    for value in values:
        kind = type(value)
        if kind is str:
            room -= len(value)
        elif kind is not int or not _INT_MIN <= value <= _INT_MAX:
            return False
        if room < 0:
            return False
    return True


def exact_fingerprint(values: tuple[Any, ...], encode: Callable[[tuple[Any, ...]], bytes]) -> Any:
    """The fingerprint of a call's bound argument ``values`` for a store local to this process.

    Compared only with ``==`` in this process, so it can be the arguments themselves:

    - ``values`` as it is when every value is exactly a `str` or an `int` (never a `bool`:
      ``True == 1``) of at most 64 bits, the strings `EXACT_MAX` characters together at most;
    - else their encoding (``encode(values)``, as for Redis) when it has at most `EXACT_MAX`
      bytes, or ``b"#"`` and its SHA-256 digest (an encoding never starts with ``#``).

    A tuple never equals bytes, so equal fingerprints mean equal arguments, as with a digest,
    and what is held stays small.
    """
    return values if held_as_they_are(values) else encoded_fingerprint(values, encode)


def encoded_fingerprint(
    values: tuple[Any, ...], encode: Callable[[tuple[Any, ...]], bytes]
) -> bytes:
    """`exact_fingerprint` of ``values`` not held as they are: their encoding, or its digest."""
    encoded = encode(values)
    return encoded if len(encoded) <= EXACT_MAX else b"#" + _key_sha256(encoded).digest()


class IdempotencyBackend(Protocol):
    """What a store's ``_bind_idempotency`` returns: four steps, each atomic, sync and async.

    ``key`` is a storage key built by `storage_key`. Durations are integer milliseconds.
    ``suspends`` is False when the async forms never suspend (memory): callers may then use
    the sync forms in async code, and need no shield against cancellation.
    """

    suspends: bool
    #: True for a store local to this process (memory): keys and fingerprints are made by
    #: `exact_key` and `exact_fingerprint`. False (Redis): the key is ``key_prefix(namespace)``
    #: and the key's SHA-256, the fingerprint the SHA-256 of the key and then the encoded
    #: arguments.
    exact: bool

    def storage_key(self, namespace: str, key: str) -> str:
        """The store's key for ``key`` in ``namespace``."""
        ...

    def key_prefix(self, namespace: str) -> str:
        """What `storage_key` puts before the key, or before the key's digest.

        ``storage_key(namespace, key)`` is ``key_prefix(namespace) + sha256(key).hexdigest()``,
        or for an `exact` store `exact_key(key_prefix(namespace), key)`.
        """
        ...

    def new_owner(self) -> str:
        """A fresh owner token, unique among every caller of the store."""
        ...

    def claim(self, key: str, owner: str, fingerprint: Any, lease_ms: int) -> tuple[int, Any]:
        """Claim ``key``, or report what holds it.

        Returns ``(CLAIMED, None)``, ``(DONE, result bytes)``, ``(IN_PROGRESS, seconds left on
        the lease)`` or ``(REUSED, None)``.
        """
        ...

    async def aclaim(
        self, key: str, owner: str, fingerprint: Any, lease_ms: int
    ) -> tuple[int, Any]:
        """Async `claim`."""
        ...

    def complete(self, key: str, owner: str, result: bytes, ttl_ms: int) -> bool:
        """Store ``result`` if ``owner`` still holds the lease; False if it does not."""
        ...

    async def acomplete(self, key: str, owner: str, result: bytes, ttl_ms: int) -> bool:
        """Async `complete`."""
        ...

    def release(self, key: str, owner: str) -> bool:
        """Forget ``key`` if ``owner`` still holds its lease; False if it does not."""
        ...

    async def arelease(self, key: str, owner: str) -> bool:
        """Async `release`."""
        ...

    def read(self, key: str) -> tuple[str, Any, bytes | None] | None:
        """``(state, fingerprint, result)`` with state ``"pending"`` or ``"done"``, or None."""
        ...

    async def aread(self, key: str) -> tuple[str, Any, bytes | None] | None:
        """Async `read`."""
        ...


def new_owner() -> str:
    """A random owner token (128 bits, hex)."""
    return _urandom(16).hex()


def bind_store(store: object, clock: Clock) -> IdempotencyBackend:
    """``store._bind_idempotency(clock)``, or TypeError naming the accepted stores."""
    bind = getattr(store, "_bind_idempotency", None)
    if bind is None:
        raise TypeError(f"store must be a MemoryStore or a RedisStore, got {store!r}")
    backend: IdempotencyBackend = bind(clock)
    return backend


def _fingerprint_default(value: object) -> object:
    from pydantic_core import to_jsonable_python

    try:
        return to_jsonable_python(value)
    except Exception as error:
        raise TypeError(
            f"cannot fingerprint an argument of type {type(value).__name__}: {error}"
        ) from None


_dumps = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), default=_fingerprint_default
).encode


def _dump_float(value: float) -> bytes | None:
    # repr of a finite float is a JSON number that reads back as the same float; inf and nan
    # are left to the TypeAdapter (which refuses them).
    return repr(value).encode() if value - value == 0.0 else None


def _dump_str(value: str) -> bytes:
    return _plain_json(value).encode()


def _dump_bool(value: bool) -> bytes:
    return b"true" if value else b"false"


def _dump_none(value: None) -> bytes:
    return b"null"


def _load_str(data: bytes | str) -> str:
    value = json.loads(data)
    if type(value) is not str:
        raise ValueError("not a JSON string")
    return value


def _load_bool(data: bytes | str) -> bool:
    if data == b"true":
        return True
    if data == b"false":
        return False
    raise ValueError("not a JSON boolean")


def _load_none(data: bytes | str) -> None:
    if data != b"null":
        raise ValueError("not null")


#: Result types encoded and decoded without pydantic: (dump, load) for an exact instance.
#: What either refuses (another type, a non-finite float, other bytes) goes through pydantic.
_FAST_CODECS: dict[Any, tuple[Callable[[Any], bytes | None], Callable[[bytes | str], Any]]] = {
    int: (b"%d".__mod__, int),  # int() reads the bytes of a JSON integer as they are
    float: (_dump_float, float),
    str: (_dump_str, _load_str),
    bool: (_dump_bool, _load_bool),
    type(None): (_dump_none, _load_none),
    None: (_dump_none, _load_none),
}


class _Decoder:
    """Encodes results to JSON bytes and back, through a `TypeAdapter` or plain `json`.

    With a type, a result is serialized, then validated back from those bytes: a value that
    does not fit the type (or would not come back as one) is refused before it is stored, so
    every stored result can be replayed. For ``int``, ``float``, ``str``, ``bool`` and ``None``
    an instance of exactly that type is encoded and decoded directly (the same JSON, without
    pydantic); anything else still goes through the `TypeAdapter`.
    """

    __slots__ = (
        "_annotation",
        "_dump",
        "_explicit",
        "_fast_dump",
        "_fast_load",
        "_fast_type",
        "_fn",
        "_load",
        "_ready",
    )

    def __init__(self, fn: Callable[..., Any], result_type: Any) -> None:
        self._fn = fn
        self._explicit = result_type is not None
        self._annotation: Any = result_type
        self._dump: Callable[..., bytes] | None = None
        self._load: Callable[[bytes | str], Any] = json.loads
        self._fast_type: Any = _NO_TYPE
        self._fast_dump: Callable[[Any], bytes | None] = _dump_none
        self._fast_load: Callable[[bytes | str], Any] = json.loads
        self._ready = False

    def _prepare(self) -> None:
        annotation = self._annotation
        if not self._explicit:
            try:
                hints = typing.get_type_hints(self._fn)
            except Exception as error:
                raise TypeError(
                    f"cannot resolve the return annotation of {self._fn!r} ({error}); "
                    "pass result_type="
                ) from error
            annotation = hints.get("return", inspect.Parameter.empty)
        if annotation is not inspect.Parameter.empty and annotation is not Any:
            from pydantic import TypeAdapter

            adapter: Any = TypeAdapter(annotation)
            self._dump = adapter.serializer.to_json
            self._load = adapter.validator.validate_json
            codec = _FAST_CODECS.get(annotation) if isinstance(annotation, type) else None
            if codec is None and annotation is None:
                codec = _FAST_CODECS[None]
            if codec is not None:
                self._fast_type = type(None) if annotation is None else annotation
                self._fast_dump, self._fast_load = codec
        self._ready = True

    def encode(self, value: object) -> bytes:
        if type(value) is self._fast_type:
            data = self._fast_dump(value)
            if data is not None:
                return data
        if not self._ready:
            self._prepare()
            return self.encode(value)
        dump = self._dump
        try:
            if dump is None:
                return _plain_json(value).encode()
            data = dump(value, warnings=False)
            self._load(data)  # refuses what the type would not give back
            return data
        except Exception as error:
            raise TypeError(f"the result cannot be stored as JSON: {error}") from error

    def decode(self, data: bytes | str) -> Any:
        if not self._ready:
            self._prepare()
        if self._fast_type is not _NO_TYPE:
            try:
                return self._fast_load(data)
            except ValueError:
                pass
        return self._load(data)


class _NoType:
    """Stands for "no fast codec": no value's type is this class."""


_NO_TYPE: Any = _NoType


_plain_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class _Binder:
    """Binds call arguments to a signature; a fast path for plain positional-or-keyword ones."""

    __slots__ = (
        "_count",
        "_defaults",
        "_fast",
        "_known",
        "_names",
        "_order",
        "_signature",
        "_skip",
        "direct",
        "template",
    )

    def __init__(self, fn: Callable[..., Any]) -> None:
        try:
            signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            signature = None
        self._signature = signature
        names: list[str] = []
        defaults: dict[str, Any] = {}
        fast = signature is not None
        skip = ""
        if signature is not None:
            for index, parameter in enumerate(signature.parameters.values()):
                if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                    fast = False
                if index == 0 and parameter.name in ("self", "cls"):
                    skip = parameter.name
                if parameter.kind is parameter.POSITIONAL_OR_KEYWORD:
                    names.append(parameter.name)
                if parameter.default is not parameter.empty:
                    defaults[parameter.name] = parameter.default
        self._fast = fast
        #: How many positional arguments are, as they are, the values in signature order
        #: (every parameter given positionally, none skipped); -1 when there is no such count.
        self.direct = len(signature.parameters) if fast and not skip and signature else -1
        self._known = frozenset(signature.parameters) if signature is not None else frozenset()
        self._count = len(self._known)
        self._names = tuple(names)
        self._defaults = defaults
        self._skip = skip
        # Parameter names in signature order, less self/cls: the order values are hashed in.
        order = list(signature.parameters) if signature is not None else ["args", "kwargs"]
        self._order = tuple(order[1:] if skip else order)
        #: ``template % values``: each value's ``repr``, separated by ``|``.
        self.template = "|".join(["%r"] * len(self._order))

    def encoding(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """The arguments bound to the signature, defaults applied, as bytes to hash.

        ``encode(values(args, kwargs))``.
        """
        return self.encode(self.values(args, kwargs))

    def values(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """The arguments bound to the signature, defaults applied, in signature order.

        The first parameter is left out when it is named ``self`` or ``cls`` (the instance or
        class of a method is not part of what makes two calls the same).
        """
        if self._fast and not kwargs and len(args) == self._count:
            return args[1:] if self._skip else args  # already in signature order
        names = self._names
        if (
            self._fast
            and len(args) <= len(names)
            and kwargs.keys() <= self._known
            and not kwargs.keys() & names[: len(args)]
        ):
            arguments = dict(self._defaults)
            arguments.update(zip(names, args, strict=False))
            arguments.update(kwargs)
            if len(arguments) != self._count:  # a required argument is missing
                arguments = self._slow(args, kwargs)
        else:
            arguments = self._slow(args, kwargs)
        return tuple(map(arguments.get, self._order))

    def encode(self, values: tuple[Any, ...]) -> bytes:
        """Bound argument ``values`` as bytes, the same in every process.

        Values that are all str, int, float, bool or None are encoded as their ``repr``s
        separated by ``|`` (fast, unambiguous since each ``repr`` is a literal, and never
        starting with ``[`` or ``#``); others as a JSON array with sorted keys (starting with
        ``[``), so the two encodings never meet.
        """
        if _PLAIN.issuperset(map(type, values)):
            return (self.template % values).encode()
        return _dumps(values).encode()

    def _slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self._signature is None:
            return {"args": list(args), "kwargs": kwargs}
        bound = self._signature.bind(*args, **kwargs)  # TypeError for a call that cannot bind
        bound.apply_defaults()
        return dict(bound.arguments)


class _Target:
    """What a call of one function needs, worked out once.

    The namespace, the store's key prefix for it, the binder and the result codec.
    """

    __slots__ = ("binder", "decoder", "encoding", "namespace", "prefix")

    def __init__(
        self,
        fn: Callable[..., Any],
        namespace: str | None,
        result_type: Any,
        backend: IdempotencyBackend,
    ) -> None:
        if namespace is None:
            inner = fn
            while isinstance(inner, functools.partial):
                inner = inner.func
            module = getattr(inner, "__module__", None) or "?"
            qualname = getattr(inner, "__qualname__", None) or type(inner).__qualname__
            namespace = f"{module}.{qualname}"
        self.namespace = namespace
        self.prefix = backend.key_prefix(namespace)
        self.binder = _Binder(fn)
        self.encoding = self.binder.encoding
        self.decoder = _Decoder(fn, result_type)


class Idempotent(Policy):
    """Run a function once per idempotency key; later calls with the key get the stored result.

    Built by `idempotent`; see it for the arguments. As a policy it decorates sync and async
    functions and methods, and works with `call` / `acall` and inside a `Pipeline` (the key
    function gets the call's arguments).
    """

    __slots__ = (
        "_backend",
        "_key",
        "_lease_ms",
        "_ttl_ms",
        "clock",
        "lock_timeout",
        "namespace",
        "result_type",
        "store",
        "ttl",
        "wait",
    )

    kind = "idempotency"

    def __init__(
        self,
        *,
        store: MemoryStore | RedisStore,
        key: Callable[..., str],
        ttl: float = 86_400,
        lock_timeout: float = 90,
        wait: float | None = None,
        namespace: str | None = None,
        result_type: Any = None,
        clock: Clock | None = None,
    ) -> None:
        if not callable(key):
            raise TypeError(f"key must be a callable returning a str, got {key!r}")
        self.ttl = _check_seconds(ttl, "ttl")
        self.lock_timeout = _check_seconds(lock_timeout, "lock_timeout")
        self.wait = _check_max_wait(wait, "wait")
        if namespace is not None and (not isinstance(namespace, str) or not namespace):
            raise TypeError(f"namespace must be a non-empty str or None, got {namespace!r}")
        self.namespace = namespace
        self.result_type = result_type
        self.clock = check_clock(clock, "clock")
        self.store = store
        self._key = key
        self._ttl_ms = max(1, math.ceil(self.ttl * 1000))
        self._lease_ms = max(1, math.ceil(self.lock_timeout * 1000))
        self._backend = bind_store(store, self.clock)

    @property
    def name(self) -> str:
        """The namespace given, or ``"idempotent"`` (events name the function's namespace)."""
        return self.namespace or "idempotent"

    def __repr__(self) -> str:
        return (
            f"Idempotent(store={self.store!r}, ttl={self.ttl!r}, "
            f"lock_timeout={self.lock_timeout!r}, wait={self.wait!r}, "
            f"namespace={self.namespace!r})"
        )

    # -- decorator ------------------------------------------------------------------------

    def _wrap_sync(self, fn: Callable[P, R]) -> Callable[P, R]:
        target = _Target(fn, self.namespace, self.result_type, self._backend)
        wrapper: Callable[P, R] = self._runner(target, fn)
        return wrapper

    def _wrap_async(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        target = _Target(fn, self.namespace, self.result_type, self._backend)
        arun = self._arun

        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return await arun(target, fn, args, kwargs)

        return wrapper

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` once per key; return the stored result afterwards."""
        target, skip = self._target(fn, args)
        return self._runner(target, fn, skip)(*args, **kwargs)

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Async `call`."""
        target, skip = self._target(fn, args)
        return await self._arun(target, fn, args, kwargs, skip)

    def _target(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[_Target, int]:
        """The user's function and how many leading arguments are inner policies' calls.

        Inside a `Pipeline`, ``call`` gets ``(inner.call, ..., user_fn, *user_args)``: the key,
        the fingerprint and the namespace belong to the user's function and its arguments.
        """
        skip = 0
        while isinstance(getattr(fn, "__self__", None), Policy) and skip < len(args):
            name = getattr(fn, "__name__", "")
            if name not in ("call", "acall"):
                break
            fn = args[skip]
            skip += 1
        return _Target(fn, self.namespace, self.result_type, self._backend), skip

    # -- the protocol -----------------------------------------------------------------------

    def _prepare(
        self, target: _Target, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, str, Any]:
        """The user's key, the storage key and the fingerprint of one call.

        For Redis, one SHA-256 serves both: its digest after the key is the storage key's
        digest (``sha256(key)``), and its digest after the key and then the encoded arguments
        is the fingerprint (a SHA-256 of the arguments, behind a key that every call compared
        with it shares). For memory, `exact_key` and `exact_fingerprint`.
        """
        user_key = self._key(*args, **kwargs)
        if type(user_key) is not str and not isinstance(user_key, str):
            raise TypeError(f"key must return a str, got {user_key!r}")
        if self._backend.exact:
            binder = target.binder
            fingerprint = exact_fingerprint(binder.values(args, kwargs), binder.encode)
            return user_key, exact_key(target.prefix, user_key), fingerprint
        digest = _key_sha256(user_key.encode())
        key = target.prefix + digest.hexdigest()
        digest.update(target.encoding(args, kwargs))
        return user_key, key, digest.hexdigest()

    def _poll_delay(self, waited: float, delay: float, left: float) -> float:
        budget = self.lock_timeout if self.wait is None else self.wait
        deadline = get_deadline()
        remaining_wait = budget - waited
        if deadline is not None:
            remaining_wait = min(remaining_wait, deadline.remaining())
        if remaining_wait <= 0:
            return -1.0
        return max(0.0, min(delay, remaining_wait, left))

    def _replay(self, target: _Target, user_key: str, data: Any) -> Any:
        value = target.decoder.decode(data)
        if HUB.active:
            HUB.emit(IdempotentReplay(self.kind, target.namespace, user_key))
        return value

    def _lost(self, target: _Target, user_key: str) -> IdempotencyLeaseLost:
        if HUB.active:
            HUB.emit(IdempotencyLeaseLostEvent(self.kind, target.namespace, user_key))
        return IdempotencyLeaseLost(user_key)

    def _release_failed(self, target: _Target, error: StoreUnavailable) -> None:
        if HUB.active:
            HUB.emit(StoreError(self.kind, target.namespace, "release", error, "expire"))

    def _runner(self, target: _Target, fn: Callable[..., R], skip: int = 0) -> Callable[..., R]:
        """A closure running ``fn`` under this policy, with everything it reads bound once.

        Inside a `Pipeline`, the first ``skip`` arguments are inner policies' calls: the key
        and the fingerprint come from the arguments after them.
        """
        key_of = self._key
        prefix = target.prefix
        encoding = target.encoding
        decoder = target.decoder
        backend = self._backend
        new_owner = backend.new_owner
        claim = backend.claim
        complete = backend.complete
        lease_ms = self._lease_ms
        ttl_ms = self._ttl_ms
        sha256 = _key_sha256
        exact = backend.exact
        direct = target.binder.direct
        template = target.binder.template
        binder_values = target.binder.values
        binder_encode = target.binder.encode
        held_as_they_are_ = getattr(backend, "held_as_they_are", held_as_they_are)
        plain = _PLAIN.issuperset
        wait = self._wait
        release = self._release
        kind = self.kind
        namespace = target.namespace

        def run(*args: Any, **kwargs: Any) -> R:
            user_args = args[skip:] if skip else args
            user_key = key_of(*user_args, **kwargs) if kwargs else key_of(*user_args)
            if type(user_key) is not str and not isinstance(user_key, str):
                raise TypeError(f"key must return a str, got {user_key!r}")
            fingerprint: Any
            if exact:  # `exact_key` and `exact_fingerprint`, inlined for the common case
                values = (
                    user_args
                    if not kwargs and len(user_args) == direct
                    else binder_values(user_args, kwargs)
                )
                fingerprint = (
                    values
                    if held_as_they_are_(values)
                    else encoded_fingerprint(values, binder_encode)
                )
                key = (
                    prefix + user_key if len(user_key) <= EXACT_MAX else exact_key(prefix, user_key)
                )
            else:
                if not kwargs and len(user_args) == direct and plain(map(type, user_args)):
                    encoded = (template % user_args).encode()  # as `_Binder.encoding` does
                else:
                    encoded = encoding(user_args, kwargs)
                digest = sha256(user_key.encode())
                key = prefix + digest.hexdigest()
                digest.update(encoded)
                fingerprint = digest.hexdigest()
            owner = new_owner()
            status, payload = claim(key, owner, fingerprint, lease_ms)
            if status != CLAIMED:
                if status != DONE:
                    status, payload = wait(user_key, key, owner, fingerprint, status, payload)
                if status == DONE:
                    replayed: R
                    if decoder._fast_type is not _NO_TYPE:  # `decoder.decode`, inlined
                        try:
                            replayed = decoder._fast_load(payload)
                        except ValueError:
                            replayed = decoder.decode(payload)
                    else:
                        replayed = decoder.decode(payload)
                    if HUB.active:
                        HUB.emit(IdempotentReplay(kind, namespace, user_key))
                    return replayed
            try:
                result = fn(*args, **kwargs) if kwargs else fn(*args)
                data = (  # `decoder.encode`, inlined for a result of its exact type
                    decoder._fast_dump(result) if type(result) is decoder._fast_type else None
                ) or decoder.encode(result)
            except BaseException:
                release(target, key, owner)
                raise
            try:
                stored = complete(key, owner, data, ttl_ms)
            except StoreUnavailable as error:
                # The work is done; its result could not be stored. The lease runs out by itself.
                if HUB.active:
                    HUB.emit(StoreError(kind, namespace, "complete", error, "expire"))
                return result
            if not stored:
                raise self._lost(target, user_key)
            return result

        return run

    def _wait(
        self, user_key: str, key: str, owner: str, fingerprint: Any, status: int, payload: Any
    ) -> tuple[int, Any]:
        """Poll the store after a claim found ``status``, until it is CLAIMED or DONE."""
        clock = self.clock
        started = clock.monotonic()
        delay = _POLL_FIRST
        while True:
            if status in (CLAIMED, DONE):
                return status, payload
            if status == REUSED:
                raise IdempotencyKeyReused(user_key)
            pause = self._poll_delay(clock.monotonic() - started, delay, payload)
            if pause < 0:
                raise IdempotencyInProgress(user_key, retry_after=payload)
            clock.sleep(pause)
            delay = min(delay * 2, _POLL_MAX)
            status, payload = self._backend.claim(key, owner, fingerprint, self._lease_ms)

    def _release(self, target: _Target, key: str, owner: str) -> None:
        try:
            self._backend.release(key, owner)
        except StoreUnavailable as error:
            self._release_failed(target, error)

    async def _arun(
        self,
        target: _Target,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        skip: int = 0,
    ) -> R:
        user_key, key, fingerprint = self._prepare(target, args[skip:] if skip else args, kwargs)
        backend = self._backend
        inline = not backend.suspends
        owner = backend.new_owner()
        clock = self.clock
        started: float | None = None
        delay = _POLL_FIRST
        while True:
            # Shielded: a claim made in the store must be known here, or the key stays
            # locked until its lease runs out. A pending cancellation strikes right after.
            if inline:
                status, payload = backend.claim(key, owner, fingerprint, self._lease_ms)
            else:
                with anyio.CancelScope(shield=True):
                    status, payload = await backend.aclaim(key, owner, fingerprint, self._lease_ms)
            if status == CLAIMED:
                break
            if status == DONE:
                replayed: R = self._replay(target, user_key, payload)
                return replayed
            if status == REUSED:
                raise IdempotencyKeyReused(user_key)
            if started is None:
                started = clock.monotonic()
            pause = self._poll_delay(clock.monotonic() - started, delay, payload)
            if pause < 0:
                raise IdempotencyInProgress(user_key, retry_after=payload)
            await clock.asleep(pause)
            delay = min(delay * 2, _POLL_MAX)
        try:
            result = await fn(*args, **kwargs)
            data = target.decoder.encode(result)
        except BaseException:
            with anyio.CancelScope(shield=True):
                try:
                    await backend.arelease(key, owner)
                except StoreUnavailable as error:
                    self._release_failed(target, error)
            raise
        try:
            if inline:
                stored = backend.complete(key, owner, data, self._ttl_ms)
            else:
                with anyio.CancelScope(shield=True):
                    stored = await backend.acomplete(key, owner, data, self._ttl_ms)
        except StoreUnavailable as error:
            if HUB.active:
                HUB.emit(StoreError(self.kind, target.namespace, "complete", error, "expire"))
            return result
        if not stored:
            raise self._lost(target, user_key)
        return result


def idempotent(
    *,
    store: MemoryStore | RedisStore,
    key: Callable[..., str],
    ttl: float = 86_400,
    lock_timeout: float = 90,
    wait: float | None = None,
    namespace: str | None = None,
    result_type: Any = None,
    clock: Clock | None = None,
) -> Idempotent:
    """Make a function run once per idempotency key, across processes with a `RedisStore`.

    ```python
    import resilient
    from resilient.stores import MemoryStore

    calls = []

    @resilient.idempotent(store=MemoryStore(), key=lambda order_id, amount: order_id)
    def charge(order_id: str, amount: int) -> int:
        calls.append(order_id)
        return amount

    assert charge("a", 5) == charge("a", amount=5) == 5
    assert calls == ["a"]
    ```

    Args:
        store: a `resilient.stores.MemoryStore` (one process) or `resilient.stores.RedisStore`
            (every process using the same Redis). Store errors always fail closed: when the
            store cannot be reached the function is not run and `StoreUnavailable` is raised,
            whatever the store's ``on_error``.
        key: a callable taking the function's arguments and returning the idempotency key (a
            str of any length; it is stored as a SHA-256 digest).
        ttl: seconds a result is kept (default one day).
        lock_timeout: the lease, in seconds (default 90): a call still running after it no
            longer holds the key; the next caller runs, and the late one raises
            `IdempotencyLeaseLost` instead of storing its result. Pick it above the function's
            longest run.
        wait: seconds a concurrent duplicate waits for the first call's result before raising
            `IdempotencyInProgress` (default: the lease); ``0`` raises at once. Waiting polls
            the store and never outlasts a deadline in scope.
        namespace: the key namespace (default the function's module and qualified name).
        result_type: the type results are stored as, through a pydantic ``TypeAdapter``
            (default the return annotation; without either, plain JSON values only).
        clock: the clock waits sleep on (and, with a `MemoryStore`, leases are measured on).

    Raises:
        IdempotencyKeyReused: the key was used with different arguments.
        IdempotencyInProgress: another call with the key is running and ``wait`` ran out.
        IdempotencyLeaseLost: this call outlived its lease; its result was not stored.
        StoreUnavailable: the store cannot be reached; the function did not run.
        TypeError: the result cannot be encoded as JSON (the key is released).
    """
    return Idempotent(
        store=store,
        key=key,
        ttl=ttl,
        lock_timeout=lock_timeout,
        wait=wait,
        namespace=namespace,
        result_type=result_type,
        clock=clock,
    )
