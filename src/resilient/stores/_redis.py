"""`RedisStore`: state shared by every process that talks to one Redis, one round trip per decision.

Every decision is one Lua script (``_scripts/*.lua``, shipped as package data) run with
``EVALSHA``; after ``NOSCRIPT`` (a restarted or flushed server) the same call is made once with
``EVAL``, which also caches the script again. Scripts read Redis's own clock
(``redis.call('TIME')``, which needs Redis >= 5), so processes on different hosts agree on the
time; every key they write gets a TTL; every key of one decision shares one ``{hash tag}``, so
the scripts work on Redis Cluster.

Internal API for other script-based policies
--------------------------------------------

A policy that keeps shared state in Redis (the rate limiters here, the circuit breaker in
``_redis_breaker``) needs these things from the store, and nothing else:

``_Script(name)`` / ``store._script(name)``
    A Lua script loaded from ``resilient/stores/_scripts/<name>.lua``, with its SHA1.
    ``store._script(name)`` caches one per store.

``store._key(name, key, suffix)``
    The Redis key ``"<prefix>:{<name>:<key>}:<suffix>"``, with backslashes and colons in the name
    escaped by a backslash so that different (name, key) pairs never meet. Keys built with the
    same ``name`` and ``key`` share the hash tag, hence the cluster slot. ``key`` is passed
    through `resilient.stores._keys.storage_key` (kept verbatim when short and harmless, else a
    SHA-256 digest), so a user-supplied key can neither end the hash tag early nor bloat Redis.

``store._eval(script, numkeys, *keys_and_args)`` and ``await store._aeval(...)``
    Run the script (EVALSHA, reloading on NOSCRIPT) with ``numkeys`` keys followed by its
    arguments, as EVALSHA takes them, and return its reply. Arguments are strings or ints.
    Any Redis failure (connection refused, socket timeout, a server that is loading or
    read-only...) is raised as `resilient.StoreUnavailable` with the original exception as
    ``__cause__``. ``_eval`` needs a sync client (TypeError otherwise).
    ``_aeval`` awaits an async client natively on asyncio, and runs a sync client's call in
    a worker thread (``anyio.to_thread``) on asyncio or trio; an async client under trio is a
    TypeError, since ``redis.asyncio`` runs on asyncio only.

``store._failed(error, policy=..., name=..., operation=...)``
    Apply the store's ``on_error`` policy to a `StoreUnavailable`: emit a ``StoreError``
    event, then return ``"allow"`` or ``"deny"`` for the caller to act on, or raise the error
    (``"raise"``).

So a caller does::

    try:
        reply = store._eval(script, 1, store._key(name, key, "state"), arg1, arg2)
    except StoreUnavailable as error:
        action = store._failed(error, policy="circuit_breaker", name=name, operation="record")
        ...  # "allow" or "deny": what to do without Redis

Timeouts
--------

A decision waits at most about twice the client's ``socket_timeout``, whatever the client's own
retry settings (redis-py >= 6 retries with backoff by default: ten times in redis-py 8, seconds
against a dead server). The store never changes the client it is given; it sends its scripts
through `_commands`, which is:

- the client itself when the client makes one attempt per call (``Retry(NoBackoff(), 0)``, as
  `RedisStore.from_url` builds it);
- for a sync ``redis.Redis`` that retries, a second ``redis.Redis`` on a pool of its own (same
  pool class, size and connection settings, ``Retry(NoBackoff(), 0)``). A client sharing the
  user's pool would not do: redis-py applies retries per connection (``Connection.retry``,
  copied from the pool's settings), and the pool reconnects a broken connection with those
  retries before any command is sent. The store's scripts and the user's commands then use
  separate connections;
- for a sync ``redis.cluster.RedisCluster`` that retries, the client with each call aimed at
  the node of its first key (``target_nodes=``), which redis-py runs once, without its
  cluster-level retries; the node clients never retry (redis-py builds them that way), and
  ``MOVED``/``ASK`` redirections are still followed;
- for an async client (``redis.asyncio.Redis`` or its cluster client) that retries, the client
  itself, each call bounded by a deadline of twice its socket timeout (``asyncio.timeout``).
  redis-py disconnects a connection whose command is cancelled and returns it to the pool, so
  the user's commands on the same pool are not affected.

A client without a ``socket_timeout`` has no bound to keep; a sync client on a pool other than
``ConnectionPool`` / ``BlockingConnectionPool`` (Sentinel, for instance) is used as it is.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import Callable, Coroutine
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from .._errors import StoreUnavailable
from .._events import HUB, StoreError
from .._rate_limit import TICKS_PER_SECOND, Decision
from ._health import StoreHealth
from ._keys import recent_storage_key, storage_key

if TYPE_CHECKING:
    from .._circuit_breaker import CircuitBreaker
    from .._clock import Clock
    from .._dead_letter import DeadLetterQueue
    from .._rate_limit import RateLimiter
    from ._redis_breaker import _RedisCircuitBackend
    from ._redis_dead_letter import _RedisDeadLetters
    from ._redis_idempotency import _RedisIdempotency

__all__ = ["RedisStore"]

_new = tuple.__new__
_ON_ERROR = ("allow", "deny", "raise")


class _Script:
    """A Lua script from ``_scripts/<name>.lua`` and its SHA1 (what EVALSHA takes)."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = (resources.files("resilient.stores") / "_scripts" / f"{name}.lua").read_text()
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    def __repr__(self) -> str:
        return f"_Script({self.name!r})"


def _describe(client: Any, prefix: str) -> str:
    """``redis://host:port/db (prefix 'p')`` for log lines: no password, no client internals."""
    if hasattr(client, "get_default_node"):  # a cluster client: one of its nodes
        node = client.get_default_node()
        if node is None:  # an async cluster client before its first command
            startup = getattr(getattr(client, "nodes_manager", None), "startup_nodes", None)
            node = next(iter((startup or {}).values()), None)
        where = f"redis-cluster://{getattr(node, 'host', '?')}:{getattr(node, 'port', '?')}"
        return f"{where} (prefix {prefix!r})"
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None) or {}
    if "path" in kwargs:
        where = f"unix://{kwargs['path']}"
    else:
        where = f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
    return f"{where} (prefix {prefix!r})"


def _client_kind(client: object) -> str:
    """``"sync"`` or ``"async"``, or TypeError for anything but a redis-py client."""
    try:
        import redis
        import redis.asyncio
        import redis.asyncio.cluster
        import redis.cluster
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "RedisStore needs redis-py: pip install 'resilient-patterns[redis]'"
        ) from error
    if isinstance(client, (redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster)):
        return "async"
    if isinstance(client, (redis.Redis, redis.cluster.RedisCluster)):
        return "sync"
    raise TypeError(
        f"client must be a redis.Redis or a redis.asyncio.Redis, got {type(client).__name__}"
    )


def _retries(kwargs: dict[str, Any]) -> int:
    """How often a redis-py connection built with ``kwargs`` retries a command (-1: forever)."""
    retry = kwargs.get("retry")
    if retry is not None:
        return int(retry.get_retries())
    # redis-py builds Retry(NoBackoff(), 1) for a connection given only retry_on_* options.
    return 1 if kwargs.get("retry_on_timeout") or kwargs.get("retry_on_error") else 0


def _cluster_retries(client: Any) -> int:
    """A cluster client's cluster-level retries (-1 when redis-py does not say)."""
    retry = getattr(client, "retry", None)
    return int(retry.get_retries()) if retry is not None else -1


def _socket_timeout(kwargs: dict[str, Any]) -> float | None:
    timeout = kwargs.get("socket_timeout")
    return float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else None


class _ClusterCommands:
    """A sync cluster client's calls aimed at the node of their first key, so run once.

    ``RedisCluster.execute_command`` skips its cluster-level retries when it is given
    ``target_nodes``; the call still follows ``MOVED`` and ``ASK`` redirections.
    """

    __slots__ = ("_client", "execute_command")

    def __init__(self, client: Any) -> None:
        self._client = client
        node_of = client.get_node_from_key
        execute = client.execute_command

        def execute_command(*args: Any) -> Any:
            # args: EVALSHA|EVAL, sha|source, numkeys, key, ... (every script has a key)
            if not args[2]:
                return execute(*args)
            return execute(*args, target_nodes=node_of(args[3]))

        self.execute_command = execute_command


def _sync_commands(client: Any) -> Any:
    """What a sync store sends its commands through (see "Timeouts" in the module docstring)."""
    import redis
    import redis.backoff
    import redis.cluster
    import redis.retry

    if isinstance(client, redis.cluster.RedisCluster):
        if _cluster_retries(client) == 0:
            return client
        return _ClusterCommands(client)
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    if _retries(kwargs) == 0 or _socket_timeout(kwargs) is None:
        return client
    pool_class = type(pool)
    if pool_class not in (redis.ConnectionPool, redis.BlockingConnectionPool):
        return client
    kwargs["retry"] = redis.retry.Retry(redis.backoff.NoBackoff(), 0)
    kwargs.pop("retry_on_timeout", None)
    kwargs.pop("retry_on_error", None)
    options: dict[str, Any] = {}
    if pool_class is redis.BlockingConnectionPool:
        options["timeout"] = pool.timeout
    shadow_pool = pool_class(
        connection_class=pool.connection_class,
        max_connections=pool.max_connections,
        **options,
        **kwargs,
    )
    return redis.Redis(connection_pool=shadow_pool)


def _async_deadline(client: Any) -> float | None:
    """The deadline of an async client's calls, or None when its own settings bound them."""
    import redis.asyncio.cluster

    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        kwargs = client.connection_kwargs
        retries = _cluster_retries(client)
    else:
        kwargs = client.connection_pool.connection_kwargs
        retries = _retries(kwargs)
    timeout = _socket_timeout(kwargs)
    if retries == 0 or timeout is None:
        return None
    return 2 * timeout


async def _within(call: Coroutine[Any, Any, Any], seconds: float) -> Any:
    """Await ``call``, cancelled after ``seconds`` (then TimeoutError, an OSError)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await call
    else:  # pragma: no cover - Python 3.10 has no asyncio.timeout
        return await asyncio.wait_for(call, seconds)


class RedisStore:
    """State in Redis, shared by every process using the same server and prefix.

    Each decision is one round trip: a Lua script run with EVALSHA, on Redis's own clock, that
    leaves a TTL on every key it writes. Keys look like ``resilient:{api:user:42}:gcra``; the
    ``{...}`` hash tag keeps all the keys of one decision in one Redis Cluster slot.

    ``client`` may be sync or async. Sync calls (``try_acquire``, ``acquire``) need a
    ``redis.Redis``. Async calls use a ``redis.asyncio.Redis`` natively on asyncio; given a
    ``redis.Redis`` they run it in a worker thread, which is also how to use Redis under trio
    (``redis.asyncio`` does not run on trio). Other pairings raise TypeError.

    When Redis fails (down, restarting, or slower than the client's ``socket_timeout``), the
    decision follows ``on_error`` and a `resilient.instrumentation.StoreError` event is emitted:

    - ``"allow"`` (default): fail open; the call goes ahead as if there were no limit;
    - ``"deny"``: fail closed; the decision refuses with ``retry_after=error_retry_after``;
    - ``"raise"``: raise `resilient.StoreUnavailable`.

    A decision waits at most about twice the client's ``socket_timeout``, whatever the
    client's own retries (the store does not change the client; a sync ``redis.Redis`` that
    retries gets a second pool of connections, without retries, for the store's scripts), so
    give the client a short ``socket_timeout``, or build the store with `from_url`. After a
    restart the store carries on: scripts are reloaded on ``NOSCRIPT`` and the client
    reconnects; only the counters are lost (limits start over, full).

    Args:
        client: a ``redis.Redis`` or ``redis.asyncio.Redis`` (cluster clients too).
        prefix: the first part of every key (default ``"resilient"``).
        on_error: ``"allow"``, ``"deny"`` or ``"raise"``; see above.
        error_retry_after: the ``retry_after`` of decisions denied because Redis failed
            (``on_error="deny"``), in seconds (default 1.0).
        breaker_staleness: opt-in, for circuit breakers on this store: seconds for which a
            reply saying CLOSED is trusted, so that a steady stream of calls costs one round
            trip each instead of two (default 0: every call asks Redis). The price: a process
            may admit calls for up to this long after another process opened the breaker.
            Counts stay exact. See docs/circuit-breaker.md.
    """

    __slots__ = (
        "_async",
        "_commands",
        "_deadline",
        "_errors",
        "_health",
        "_no_script",
        "_scripts",
        "breaker_staleness",
        "client",
        "error_retry_after",
        "on_error",
        "prefix",
    )

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "resilient",
        on_error: str = "allow",
        error_retry_after: float = 1.0,
        breaker_staleness: float = 0.0,
    ) -> None:
        self._async = _client_kind(client) == "async"
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {prefix!r}")
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be non-empty and without braces, got {prefix!r}")
        if on_error not in _ON_ERROR:
            raise ValueError(f"on_error must be 'allow', 'deny' or 'raise', got {on_error!r}")
        if isinstance(error_retry_after, bool) or not isinstance(error_retry_after, (int, float)):
            raise TypeError(f"error_retry_after must be a number, got {error_retry_after!r}")
        if not error_retry_after > 0:
            raise ValueError(f"error_retry_after must be > 0, got {error_retry_after!r}")
        if isinstance(breaker_staleness, bool) or not isinstance(breaker_staleness, (int, float)):
            raise TypeError(f"breaker_staleness must be a number, got {breaker_staleness!r}")
        if not 0 <= breaker_staleness < float("inf"):
            raise ValueError(
                f"breaker_staleness must be >= 0 and finite, got {breaker_staleness!r}"
            )
        import redis.exceptions

        self.client = client
        self.prefix = prefix
        self.on_error = on_error
        self.error_retry_after = float(error_retry_after)
        self.breaker_staleness = float(breaker_staleness)
        # A cluster client raises RedisClusterException, which is not a RedisError, when no
        # node answers or a slot has no node: an outage too.
        self._errors: tuple[type[BaseException], ...] = (
            redis.exceptions.RedisError,
            redis.exceptions.RedisClusterException,
            OSError,
        )
        self._no_script: type[BaseException] = redis.exceptions.NoScriptError
        self._scripts: dict[str, _Script] = {}
        # What the scripts go through, and the async deadline: each decision waits at most
        # about twice the socket timeout, whatever the client's retries (module docstring).
        self._commands: Any = client
        self._deadline: float | None = None
        if self._async:
            self._deadline = _async_deadline(client)
        else:
            self._commands = _sync_commands(client)
        # The first failure of an outage logs a WARNING, the first success after it an INFO.
        self._health = StoreHealth(_describe(client, prefix))

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        asynchronous: bool = False,
        socket_timeout: float = 0.25,
        max_connections: int = 50,
        prefix: str = "resilient",
        on_error: str = "allow",
        error_retry_after: float = 1.0,
        breaker_staleness: float = 0.0,
    ) -> RedisStore:
        """A store with a client built for failing fast: short timeouts, no retries.

        Args:
            url: a Redis URL, e.g. ``redis://127.0.0.1:6379/0``.
            asynchronous: build a ``redis.asyncio.Redis`` instead of a ``redis.Redis``.
            socket_timeout: seconds to wait for a connection or a reply (default 0.25).
            max_connections: the size of the async client's connection pool (default 50);
                beyond it, calls wait for a free connection, at most ``socket_timeout``.
            prefix: see `RedisStore`.
            on_error: see `RedisStore`.
            error_retry_after: see `RedisStore`.
            breaker_staleness: see `RedisStore`.
        """
        import redis
        import redis.asyncio
        import redis.backoff
        import redis.retry

        options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_timeout,
            "retry": redis.retry.Retry(redis.backoff.NoBackoff(), 0),
        }
        client: Any
        if asynchronous:
            # Tasks are cheap and many: with redis-py's default pool, more concurrent calls
            # than connections fail at once (MaxConnectionsError, redis-py >= 8), which would
            # read as an outage. A blocking pool makes them queue for a connection instead,
            # for at most the socket timeout.
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                url, max_connections=max_connections, timeout=socket_timeout, **options
            )
            client = redis.asyncio.Redis(connection_pool=pool)
            client.auto_close_connection_pool = True  # aclose() closes the pool too
        else:
            client = redis.Redis.from_url(url, **options)
        return cls(
            client,
            prefix=prefix,
            on_error=on_error,
            error_retry_after=error_retry_after,
            breaker_staleness=breaker_staleness,
        )

    def __repr__(self) -> str:
        return f"RedisStore({self.client!r}, prefix={self.prefix!r}, on_error={self.on_error!r})"

    # -- internal API shared by script-based policies (see the module docstring) -------------

    def _script(self, name: str) -> _Script:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = _Script(name)
        return script

    def _key(self, name: str, key: str, suffix: str) -> str:
        # The name's own backslashes and colons are escaped, so that the first bare colon ends
        # it: name "api" with key "user:42" and name "api:user" with key "42" stay apart.
        head, tail = self._key_parts(name, suffix)
        return head + storage_key(key) + tail

    def _key_parts(self, name: str, suffix: str) -> tuple[str, str]:
        """What comes before and after the stored key in `_key`."""
        escaped = name.replace("\\", "\\\\").replace(":", "\\:")
        return f"{self.prefix}:{{{escaped}:", f"}}:{suffix}"

    def _eval(self, script: _Script, numkeys: int, *keys_and_args: str | int) -> Any:
        if self._async:
            raise TypeError(
                "this RedisStore has a redis.asyncio client, which serves async calls only; "
                "use the async forms (atry_acquire, aacquire, acall, async with, async "
                "decorated functions) or give the store a redis.Redis"
            )
        try:
            reply = self._commands.execute_command("EVALSHA", script.sha, numkeys, *keys_and_args)
        except Exception as error:
            reply = self._evalsha_failed(error, script, numkeys, keys_and_args)
        if self._health.down:
            self._health.recovered()
        return reply

    def _evalsha_failed(
        self,
        error: Exception,
        script: _Script,
        numkeys: int,
        keys_and_args: tuple[str | int, ...],
    ) -> Any:
        """What follows a failed sync EVALSHA (see `_eval`): its reply, or the error to raise.

        After NOSCRIPT (a restarted or flushed server) the script runs once with EVAL, which
        caches it again; Redis and socket errors become `StoreUnavailable`; anything else
        propagates as it is.
        """
        if isinstance(error, self._no_script):
            try:
                return self._commands.execute_command(
                    "EVAL", script.source, numkeys, *keys_and_args
                )
            except self._errors as again:
                raise StoreUnavailable(f"redis failed: {again}") from again
        if isinstance(error, self._errors):
            raise StoreUnavailable(f"redis failed: {error}") from error
        raise error

    async def _aeval(self, script: _Script, numkeys: int, *keys_and_args: str | int) -> Any:
        if not self._async:
            return await anyio.to_thread.run_sync(self._eval, script, numkeys, *keys_and_args)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise TypeError(
                "redis.asyncio runs on asyncio only; under trio give the RedisStore a sync "
                "redis.Redis client (its calls then run in a worker thread)"
            ) from None
        try:
            if self._deadline is None:
                execute = self.client.execute_command
                try:
                    reply = await execute("EVALSHA", script.sha, numkeys, *keys_and_args)
                except self._no_script:
                    reply = await execute("EVAL", script.source, numkeys, *keys_and_args)
            else:
                reply = await _within(self._acall(script, numkeys, keys_and_args), self._deadline)
        except self._errors as error:
            raise StoreUnavailable(f"redis failed: {error}") from error
        if self._health.down:
            self._health.recovered()
        return reply

    async def _acall(
        self, script: _Script, numkeys: int, keys_and_args: tuple[str | int, ...]
    ) -> Any:
        execute = self.client.execute_command
        try:
            return await execute("EVALSHA", script.sha, numkeys, *keys_and_args)
        except self._no_script:
            return await execute("EVAL", script.source, numkeys, *keys_and_args)

    def _failed(self, error: StoreUnavailable, *, policy: str, name: str, operation: str) -> str:
        action = self.on_error
        self._health.failed(error, policy=policy, name=name, operation=operation, action=action)
        if HUB.active:
            HUB.emit(StoreError(policy, name, operation, error, action))
        if action == "raise":
            raise error
        return action

    def _bind_rate_limiter(self, limiter: RateLimiter) -> _RedisRateLimiter:
        return _RedisRateLimiter(self, limiter)

    def _bind_circuit_breaker(
        self, breaker: CircuitBreaker, settings: dict[str, Any]
    ) -> _RedisCircuitBackend:
        from ._redis_breaker import _RedisCircuitBackend

        return _RedisCircuitBackend(self, breaker, settings)

    def _bind_idempotency(self, clock: Clock) -> _RedisIdempotency:
        # Leases and TTLs run on Redis's clock; ``clock`` is only what waiting callers sleep on.
        from ._redis_idempotency import _RedisIdempotency

        return _RedisIdempotency(self)

    def _bind_dead_letters(self, queue: DeadLetterQueue) -> _RedisDeadLetters:
        from ._redis_dead_letter import _RedisDeadLetters

        return _RedisDeadLetters(self, queue.name, queue.max_length)


class _RedisRateLimiter:
    """One limiter's decisions through a `RedisStore` (one script call each)."""

    __slots__ = (
        "_first",
        "_key_head",
        "_key_tail",
        "_limit",
        "_name",
        "_script",
        "_second",
        "_store",
        "decide",
    )

    decide: Callable[..., Decision]

    def __init__(self, store: RedisStore, limiter: RateLimiter) -> None:
        algorithm = limiter.algorithm
        self._store = store
        self._script = store._script(algorithm)
        self._name = limiter.name
        self._limit = limiter._limit
        self._first, self._second = limiter._params()
        head, tail = store._key_parts(limiter.name, algorithm)
        self._key_head = head
        self._key_tail = tail
        # With a sync client, decisions take a closure that calls the client directly: a
        # Redis decision should cost one round trip and as little as possible besides.
        self.decide = self._decide if store._async else self._direct_decide()

    def _direct_decide(self) -> Callable[..., Decision]:
        """`_decide` for a sync client, with `RedisStore._eval`'s common case inlined."""
        store = self._store
        script = self._script
        sha = script.sha
        head = self._key_head
        tail = self._key_tail
        first = self._first
        second = self._second
        limit = self._limit
        execute = store._commands.execute_command
        failed = store._evalsha_failed
        fallback = self._fallback
        general = self._decide
        ticks = TICKS_PER_SECOND
        recent = recent_storage_key
        storage = storage_key
        plain = str
        health = store._health

        def decide(key: str, cost: int, now: int | None = None) -> Decision:
            if now is not None:
                return general(key, cost, now)
            # A non-str key is a TypeError (storage_key); a digest if need be.
            key = (recent(key) or storage(key)) if key.__class__ is plain else storage(key)
            redis_key = head + key + tail
            try:
                reply = execute("EVALSHA", sha, 1, redis_key, first, second, cost)
            except Exception as error:
                try:
                    reply = failed(error, script, 1, (redis_key, first, second, cost))
                except StoreUnavailable as unavailable:
                    return fallback(unavailable, cost)
            if health.down:
                health.recovered()
            allowed, remaining, retry_after, reset_after = reply
            return _new(
                Decision, (allowed == 1, limit, remaining, retry_after / ticks, reset_after / ticks)
            )

        return decide

    def _args(self, cost: int, now: int | None) -> tuple[int, ...]:
        if now is None:
            return (self._first, self._second, cost)
        return (self._first, self._second, cost, now)  # tests only: pin the script's clock

    def _decision(self, reply: Any) -> Decision:
        # The scripts reply {allowed, remaining, retry_after, reset_after}, integers.
        allowed, remaining, retry_after, reset_after = reply
        return _new(
            Decision,
            (
                allowed == 1,
                self._limit,
                remaining,
                retry_after / TICKS_PER_SECOND,
                reset_after / TICKS_PER_SECOND,
            ),
        )

    def _fallback(self, error: StoreUnavailable, cost: int) -> Decision:
        action = self._store._failed(
            error, policy="rate_limiter", name=self._name, operation="rate_limit"
        )
        if action == "allow":
            return _new(Decision, (True, self._limit, max(0, self._limit - cost), 0.0, 0.0))
        wait = self._store.error_retry_after
        return _new(Decision, (False, self._limit, 0, wait, wait))

    def _decide(self, key: str, cost: int, now: int | None = None) -> Decision:
        """One decision; ``now`` (ticks) pins the script's clock, for tests only."""
        redis_key = self._key_head + storage_key(key) + self._key_tail
        try:
            reply = self._store._eval(self._script, 1, redis_key, *self._args(cost, now))
        except StoreUnavailable as error:
            return self._fallback(error, cost)
        return self._decision(reply)

    async def adecide(self, key: str, cost: int, now: int | None = None) -> Decision:
        """Async `decide`."""
        redis_key = self._key_head + storage_key(key) + self._key_tail
        try:
            reply = await self._store._aeval(self._script, 1, redis_key, *self._args(cost, now))
        except StoreUnavailable as error:
            return self._fallback(error, cost)
        return self._decision(reply)
