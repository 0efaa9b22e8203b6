"""Store-failure promises (DESIGN §3) under real faults of a real redis-server.

Each test builds every Redis-backed policy on one store, injects one fault while the policies
are in use, and checks, for every call made during the fault:

- the outcome is the documented one: ``on_error`` for the limiters and the shared breaker
  (``"allow"``: the call goes ahead; ``"deny"``: a refusal; ``"raise"``: `StoreUnavailable`);
  always fail closed for idempotency (the decorator raises `StoreUnavailable` without running
  the function, the middleware answers 503 without running the app) and for dead letters
  (`capture` re-raises the handler's exception with a note instead of acknowledging it);
- no call waits much past twice the client's socket timeout;
- no other exception escapes;

then lifts the fault and checks that the same policy objects, on the same store and client,
work against Redis again (their keys are back in Redis, with a TTL).

Faults: SIGKILL (then a restart, empty), a restart between calls (stale pooled connections,
scripts gone), SIGSTOP (a hung server, then SIGCONT), ``CLIENT KILL`` of the connection while its
script call is in flight (held with ``CLIENT PAUSE ... WRITE``) and a full ``maxmemory`` with
``noeviction``. Clients: sync ``redis.Redis``; ``redis.asyncio`` on asyncio; a sync client in
worker threads on asyncio and on trio (how the stores serve trio).
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from resilient import (
    CircuitBreaker,
    CircuitOpenError,
    DeadLetterQueue,
    SlidingWindow,
    StoreUnavailable,
    TokenBucket,
    idempotent,
)
from resilient.instrumentation import StoreError, subscribe, unsubscribe
from resilient.integrations.asgi import IdempotencyMiddleware
from resilient.stores import RedisStore

from .._redis_server import RedisServer
from ._cluster import RedisCluster3
from .conftest import Tally, control_client, redis_binary

pytestmark = pytest.mark.redis

SOCKET_TIMEOUT = 0.2
#: What a call may take during a fault: twice the socket timeout, plus slack for a loaded host.
BOUND = 2 * SOCKET_TIMEOUT + 0.8
#: The store's error_retry_after: a denied decision's retry_after, the breaker's local pause.
RETRY_AFTER = 0.3
#: How long the policies get to work again once the fault is lifted.
RECOVERY = 5.0

FAULTS = ["sigkill", "restart", "sigstop", "client_kill", "maxmemory"]
ON_ERROR = ["allow", "deny", "raise"]


class Undocumented(AssertionError):
    """A call raised something the design does not document for this situation."""


# -- faults ---------------------------------------------------------------------------------------


class ClientKiller:
    """Holds every script call in flight (``CLIENT PAUSE WRITE``) and kills its connection.

    A thread watches ``CLIENT LIST`` from its own connection (not paused: CLIENT commands are
    not writes) and kills each client blocked on EVALSHA or EVAL, so the caller sees its
    connection reset in the middle of the call.
    """

    def __init__(self, server: RedisServer) -> None:
        self.control = control_client(server)
        self.stopping = threading.Event()
        self.kills = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.control.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            for line in self.control.execute_command("CLIENT", "LIST").decode().splitlines():
                fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
                if fields.get("cmd") in ("evalsha", "eval") and "b" in fields.get("flags", ""):
                    self.kills += self.control.execute_command("CLIENT", "KILL", "ID", fields["id"])
            self.stopping.wait(0.003)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)
        self.control.execute_command("CLIENT", "UNPAUSE")
        self.control.close()


class Fault:
    """One fault: ``inject()`` before the calls, ``lift()`` after them."""

    def __init__(self, kind: str, server: RedisServer, tally: Tally) -> None:
        self.kind = kind
        self.server = server
        self.tally = tally
        self.killer: ClientKiller | None = None

    @property
    def certain(self) -> bool:
        """Whether every call during the fault must fail (a restart may go unnoticed)."""
        return self.kind != "restart"

    def inject(self) -> None:
        self.tally[f"faults_{self.kind}"] += 1
        self.tally["faults"] += 1
        if self.kind == "sigkill":
            self.server.stop()
        elif self.kind == "restart":
            self.server.restart()
        elif self.kind == "sigstop":
            self.server.freeze()
        elif self.kind == "client_kill":
            self.killer = ClientKiller(self.server)
            self.killer.start()
        elif self.kind == "maxmemory":
            control = control_client(self.server)
            try:
                pipe = control.pipeline(transaction=False)
                for i in range(40):
                    pipe.set(f"filler:{i}", b"x" * 50_000)
                pipe.execute()
                used = int(control.info("memory")["used_memory"])
                control.config_set("maxmemory-policy", "noeviction")
                control.config_set("maxmemory", used - 1_000_000)
                with pytest.raises(redis.exceptions.ResponseError, match=r"OOM|maxmemory"):
                    control.set("probe", "x")
            finally:
                control.close()
        else:  # pragma: no cover - the parameter list is above
            raise AssertionError(self.kind)

    def lift(self) -> None:
        if self.kind == "sigkill":
            self.server.start()
        elif self.kind == "sigstop":
            self.server.thaw()
        elif self.kind == "client_kill":
            assert self.killer is not None
            self.killer.stop()
            self.tally["connections_killed_in_flight"] += self.killer.kills
        elif self.kind == "maxmemory":
            control = control_client(self.server)
            try:
                control.config_set("maxmemory", 0)
                control.delete(*[f"filler:{i}" for i in range(40)])
            finally:
                control.close()


# -- probes: one per policy -----------------------------------------------------------------------


class Outcome:
    """What a call did: ``kind`` names it, ``store_error`` says whether a StoreError was emitted."""

    def __init__(self, kind: str, errors: list[StoreError], elapsed: float) -> None:
        self.kind = kind
        #: (operation, action) of each StoreError event the call emitted.
        self.errors = [(error.operation, error.action) for error in errors]
        self.store_error = bool(errors)
        self.elapsed = elapsed

    def __repr__(self) -> str:
        return f"Outcome({self.kind!r}, errors={self.errors}, {self.elapsed:.3f}s)"


class Probe:
    """A policy on the store, called once per ``call``/``acall``, and what it should do."""

    name = ""
    fails_closed = False
    sync = True

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    def expected(self, on_error: str) -> str:
        """The outcome of a call while the store is failing."""
        return {"allow": "open", "deny": "deny", "raise": "raise"}[on_error]

    def call(self) -> str:
        raise NotImplementedError

    async def acall(self) -> str:
        raise NotImplementedError

    def key_pattern(self) -> str:
        return f"resilient:{{{self.name}:*"


class LimiterProbe(Probe):
    def __init__(self, store: RedisStore, limiter: Any) -> None:
        super().__init__(store)
        self.limiter = limiter
        self.name = limiter.name

    def _kind(self, decision: Any) -> str:
        if decision.allowed:
            # A decision from Redis has a reset time; the fail-open one has none.
            return "ok" if decision.reset_after > 0 else "open"
        if decision.retry_after == RETRY_AFTER and decision.remaining == 0:
            return "deny"
        raise Undocumented(f"{self.name}: a refusal that is not on_error's: {decision!r}")

    def call(self) -> str:
        try:
            return self._kind(self.limiter.try_acquire("user:1"))
        except StoreUnavailable:
            return "raise"

    async def acall(self) -> str:
        try:
            return self._kind(await self.limiter.atry_acquire("user:1"))
        except StoreUnavailable:
            return "raise"


class BreakerProbe(Probe):
    name = "circuit_breaker"

    def __init__(self, store: RedisStore) -> None:
        super().__init__(store)
        self.breaker = CircuitBreaker("faults", store=store, minimum_calls=1000)
        self.runs = 0

    def _work(self) -> int:
        self.runs += 1
        return 42

    async def _awork(self) -> int:
        self.runs += 1
        return 42

    def call(self) -> str:
        try:
            assert self.breaker.call(self._work) == 42
        except CircuitOpenError:
            return "deny"
        except StoreUnavailable:
            return "raise"
        return "ok"

    async def acall(self) -> str:
        try:
            assert await self.breaker.acall(self._awork) == 42
        except CircuitOpenError:
            return "deny"
        except StoreUnavailable:
            return "raise"
        return "ok"

    def key_pattern(self) -> str:
        return "resilient:{circuit_breaker:faults}:*"


class IdempotentProbe(Probe):
    name = "idempotent"
    fails_closed = True

    def __init__(self, store: RedisStore) -> None:
        super().__init__(store)
        self.runs: list[str] = []
        runs = self.runs

        @idempotent(store=store, key=lambda order: order, namespace="faults")
        def charge(order: str) -> int:
            runs.append(order)
            return 7

        @idempotent(store=store, key=lambda order: order, namespace="faults-async")
        async def acharge(order: str) -> int:
            runs.append(order)
            return 7

        self.charge = charge
        self.acharge = acharge

    def expected(self, on_error: str) -> str:
        return "closed"

    def _check_ran_once(self, order: str, replayed: int) -> str:
        assert replayed == 7
        if self.runs.count(order) != 1:
            raise Undocumented(f"idempotent ran {self.runs.count(order)} times for one key")
        return "ok"

    def call(self) -> str:
        order = uuid.uuid4().hex
        try:
            assert self.charge(order) == 7
        except StoreUnavailable:
            if order in self.runs:
                raise Undocumented("the function ran although the store was unreachable") from None
            return "closed"
        try:
            return self._check_ran_once(order, self.charge(order))
        except StoreUnavailable:
            return "closed"  # the fault struck between the call and its replay

    async def acall(self) -> str:
        order = uuid.uuid4().hex
        try:
            assert await self.acharge(order) == 7
        except StoreUnavailable:
            if order in self.runs:
                raise Undocumented("the function ran although the store was unreachable") from None
            return "closed"
        try:
            return self._check_ran_once(order, await self.acharge(order))
        except StoreUnavailable:
            return "closed"

    def key_pattern(self) -> str:
        return "resilient:idem:faults*"


class MiddlewareProbe(Probe):
    name = "idempotency_middleware"
    fails_closed = True
    sync = False

    def __init__(self, store: RedisStore) -> None:
        super().__init__(store)
        self.runs: list[str] = []
        runs = self.runs

        async def app(scope: Any, receive: Any, send: Any) -> None:
            while (await receive()).get("more_body"):
                pass
            runs.append(dict(scope["headers"])[b"idempotency-key"].decode().strip('"'))
            await send({"type": "http.response.start", "status": 201, "headers": []})
            await send({"type": "http.response.body", "body": b"created"})

        self.app = IdempotencyMiddleware(app, store=store)

    def expected(self, on_error: str) -> str:
        return "closed"

    async def acall(self) -> str:
        key = uuid.uuid4().hex
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            headers = {"Idempotency-Key": f'"{key}"'}
            first = await client.post("/orders", content=b"{}", headers=headers)
            if first.status_code == 503:
                if key in self.runs:
                    raise Undocumented("the app ran although the store was unreachable")
                return "closed"
            assert first.status_code == 201, first.text
            again = await client.post("/orders", content=b"{}", headers=headers)
        if again.status_code == 503:
            return "closed"
        assert again.status_code == 201
        assert again.headers.get("idempotent-replayed") == "true"
        if self.runs.count(key) != 1:
            raise Undocumented(f"the app ran {self.runs.count(key)} times for one key")
        return "ok"

    def key_pattern(self) -> str:
        return "resilient:idem:*"


class DeadLetterProbe(Probe):
    name = "dead_letters"
    fails_closed = True

    def __init__(self, store: RedisStore) -> None:
        super().__init__(store)
        self.queue = DeadLetterQueue("faults", store=store)

        @self.queue.capture()
        def handle(order: str) -> None:
            raise ValueError(f"poison {order}")

        @self.queue.capture()
        async def ahandle(order: str) -> None:
            raise ValueError(f"poison {order}")

        self.handle = handle
        self.ahandle = ahandle

    def expected(self, on_error: str) -> str:
        return "closed"

    @staticmethod
    def _not_parked(error: ValueError) -> str:
        notes = getattr(error, "__notes__", [])
        if not any("not parked in the dead-letter queue 'faults'" in note for note in notes):
            raise Undocumented(f"re-raised without saying why: {notes!r}") from error
        return "closed"

    def call(self) -> str:
        try:
            assert self.handle(uuid.uuid4().hex) is None
        except ValueError as error:
            return self._not_parked(error)
        return "ok"

    async def acall(self) -> str:
        try:
            assert await self.ahandle(uuid.uuid4().hex) is None
        except ValueError as error:
            return self._not_parked(error)
        return "ok"

    def key_pattern(self) -> str:
        return "resilient:{faults:dlq}:*"


def probes(store: RedisStore) -> list[Probe]:
    return [
        LimiterProbe(store, TokenBucket(rate=1000.0, capacity=1000, store=store, name="tb")),
        LimiterProbe(store, SlidingWindow(limit=1000, window=60.0, store=store, name="sw")),
        LimiterProbe(
            store, SlidingWindow(limit=1000, window=60.0, precise=True, store=store, name="log")
        ),
        BreakerProbe(store),
        IdempotentProbe(store),
        MiddlewareProbe(store),
        DeadLetterProbe(store),
    ]


# -- the harness ----------------------------------------------------------------------------------


@pytest.fixture
def store_errors() -> Iterator[list[StoreError]]:
    seen: list[StoreError] = []

    def collect(event: Any) -> None:
        seen.append(event)

    subscribe(collect, events=[StoreError])
    yield seen
    unsubscribe(collect)


def _undocumented(probe: Probe, error: BaseException) -> Undocumented:
    text = "".join(traceback.format_exception(error))
    return Undocumented(f"{probe.name} raised an undocumented {type(error).__name__}:\n{text}")


def _measure(
    probe: Probe, errors: list[StoreError], started: float, kind: str, tally: Tally
) -> Outcome:
    elapsed = time.monotonic() - started
    tally["calls"] += 1
    return Outcome(kind, list(errors), elapsed)


class Run:
    """Calls probes and checks their outcomes; sync and async flavours share the checks."""

    def __init__(self, on_error: str, errors: list[StoreError], tally: Tally) -> None:
        self.on_error = on_error
        self.errors = errors
        self.tally = tally

    def check_during(self, probe: Probe, outcome: Outcome, fault: Fault) -> None:
        self.tally["calls_during_faults"] += 1
        self.tally.most("longest_call_during_a_fault_s", outcome.elapsed)
        assert outcome.elapsed < BOUND, f"{probe.name} took {outcome.elapsed:.3f}s ({fault.kind})"
        expected = probe.expected(self.on_error)
        kind = outcome.kind
        if kind == "ok" and isinstance(probe, BreakerProbe) and fault.certain:
            if outcome.errors and all(op == "record" for op, _ in outcome.errors):
                # Redis admitted the call (a read-only step, which a full memory allows), then
                # could not take its outcome: the local breaker counts it instead.
                assert outcome.errors == [("record", "local")], outcome
                self.tally["documented_failures"] += 1
                return
            # The call went ahead: with on_error="allow" the breaker decides locally.
            kind = "open"
        if kind == "ok" and not fault.certain:
            return  # the restart went unnoticed: the call reached the new server
        assert kind == expected, f"{probe.name} during {fault.kind}: {outcome!r}"
        if isinstance(probe, LimiterProbe):
            assert outcome.store_error, f"{probe.name}: no StoreError event"
        self.tally["documented_failures"] += 1

    def check_healthy(self, probe: Probe, outcome: Outcome) -> bool:
        return outcome.kind == "ok" and not outcome.store_error


def _check_keys(server: RedisServer, batch: list[Probe]) -> None:
    control = control_client(server)
    try:
        for probe in batch:
            keys = control.keys(probe.key_pattern())
            assert keys, f"{probe.name}: no key in Redis after recovery"
            for key in keys:
                ttl = control.pttl(key)
                if probe.name == "dead_letters":
                    assert ttl == -1, "dead letters have no TTL"
                else:
                    assert ttl > 0, f"{key!r} has no TTL"
    finally:
        control.close()


def _sync_call(probe: Probe, errors: list[StoreError], tally: Tally) -> Outcome:
    errors.clear()
    started = time.monotonic()
    try:
        kind = probe.call()
    except Undocumented:
        raise
    except BaseException as error:
        raise _undocumented(probe, error) from error
    return _measure(probe, errors, started, kind, tally)


async def _async_call(probe: Probe, errors: list[StoreError], tally: Tally) -> Outcome:
    errors.clear()
    started = time.monotonic()
    try:
        kind = await probe.acall()
    except Undocumented:
        raise
    except BaseException as error:
        raise _undocumented(probe, error) from error
    return _measure(probe, errors, started, kind, tally)


def _sync_store(url: str, on_error: str) -> RedisStore:
    return RedisStore.from_url(
        url, socket_timeout=SOCKET_TIMEOUT, on_error=on_error, error_retry_after=RETRY_AFTER
    )


@pytest.mark.parametrize("on_error", ON_ERROR)
@pytest.mark.parametrize("fault_kind", FAULTS)
def test_sync_policies_keep_their_store_failure_behaviour(
    fault_redis: RedisServer,
    fault_kind: str,
    on_error: str,
    store_errors: list[StoreError],
    reliability_tally: Callable[[str], Tally],
) -> None:
    tally = reliability_tally("faults")
    store = _sync_store(fault_redis.url, on_error)
    batch = [probe for probe in probes(store) if probe.sync]
    run = Run(on_error, store_errors, tally)
    for probe in batch:
        assert run.check_healthy(probe, _sync_call(probe, store_errors, tally)), probe.name
    fault = Fault(fault_kind, fault_redis, tally)
    fault.inject()
    try:
        for _ in range(2):
            for probe in batch:
                run.check_during(probe, _sync_call(probe, store_errors, tally), fault)
    finally:
        fault.lift()
    _recover_sync(batch, run, store_errors, tally)
    _check_keys(fault_redis, batch)
    store.client.close()


def _recover_sync(batch: list[Probe], run: Run, errors: list[StoreError], tally: Tally) -> None:
    time.sleep(RETRY_AFTER)  # the breaker's local pause after a failure
    for probe in batch:
        deadline = time.monotonic() + RECOVERY
        while not run.check_healthy(probe, _sync_call(probe, errors, tally)):
            assert time.monotonic() < deadline, f"{probe.name} did not recover"
            time.sleep(0.05)
        tally["recoveries"] += 1


@pytest.mark.parametrize("on_error", ON_ERROR)
@pytest.mark.parametrize("fault_kind", FAULTS)
@pytest.mark.parametrize("client", ["redis.asyncio", "sync-in-threads"])
async def test_async_policies_keep_their_store_failure_behaviour(
    fault_redis: RedisServer,
    fault_kind: str,
    on_error: str,
    client: str,
    anyio_backend: str,
    store_errors: list[StoreError],
    reliability_tally: Callable[[str], Tally],
) -> None:
    if client == "redis.asyncio" and anyio_backend != "asyncio":
        pytest.skip("redis.asyncio runs on asyncio only")
    tally = reliability_tally("faults")
    if client == "redis.asyncio":
        store = RedisStore.from_url(
            fault_redis.url,
            asynchronous=True,
            socket_timeout=SOCKET_TIMEOUT,
            on_error=on_error,
            error_retry_after=RETRY_AFTER,
        )
    else:
        store = _sync_store(fault_redis.url, on_error)
    batch = probes(store)
    run = Run(on_error, store_errors, tally)
    for probe in batch:
        assert run.check_healthy(probe, await _async_call(probe, store_errors, tally)), probe.name
    fault = Fault(fault_kind, fault_redis, tally)
    # Injecting and lifting block (process signals, a few commands): off the event loop.
    await anyio.to_thread.run_sync(fault.inject)
    try:
        for _ in range(2):
            for probe in batch:
                run.check_during(probe, await _async_call(probe, store_errors, tally), fault)
    finally:
        await anyio.to_thread.run_sync(fault.lift)
    await anyio.sleep(RETRY_AFTER)
    for probe in batch:
        deadline = time.monotonic() + RECOVERY
        while not run.check_healthy(probe, await _async_call(probe, store_errors, tally)):
            assert time.monotonic() < deadline, f"{probe.name} did not recover"
            await anyio.sleep(0.05)
        tally["recoveries"] += 1
    _check_keys(fault_redis, batch)
    if client == "redis.asyncio":
        await store.client.aclose()
    else:
        store.client.close()


# -- clients with redis-py's default retries -----------------------------------------------------
#
# redis-py 8 builds ``redis.Redis(host, port, ...)`` with ten retries and exponential backoff, and
# the cluster clients with ten cluster-level retries. A decision still gives up within about
# twice the socket timeout (DESIGN §3), and the client is left as it was: its settings unchanged,
# its own commands on its own pool served correctly once the fault is lifted.

RETRY_FAULTS = ["sigkill", "sigstop"]


def _break(server: RedisServer, fault_kind: str) -> None:
    if fault_kind == "sigkill":
        server.stop()
    else:
        server.freeze()


def _mend(server: RedisServer, fault_kind: str) -> None:
    if fault_kind == "sigkill":
        server.start()
    else:
        server.thaw()


def _limiter(store: RedisStore) -> Any:
    return TokenBucket(rate=1.0, capacity=5, store=store, name="retrying")


def _denied_by_the_store(decision: Any) -> bool:
    """A refusal of ``on_error="deny"`` (RETRY_AFTER), not one from Redis."""
    return not decision.allowed and decision.retry_after == RETRY_AFTER


def _from_redis(decision: Any) -> bool:
    return bool(decision.allowed and decision.reset_after > 0)


def _default_retries_client(server: RedisServer) -> Any:
    client = redis.Redis(
        host=server.host,
        port=server.port,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
    )
    assert client.get_retry().get_retries() > 0  # redis-py >= 6: retries (10 in redis-py 8)
    return client


def test_the_store_leaves_the_client_as_it_is_and_adds_a_pool_only_when_the_client_retries(
    fault_redis: RedisServer,
) -> None:
    import redis.backoff
    import redis.retry

    plain = RedisStore.from_url(fault_redis.url, socket_timeout=SOCKET_TIMEOUT)
    assert plain._commands is plain.client  # no retries: scripts go through the client itself
    client = _default_retries_client(fault_redis)
    kwargs = dict(client.connection_pool.connection_kwargs)
    store = RedisStore(client)
    assert store.client is client
    assert client.connection_pool.connection_kwargs == kwargs  # nothing changed on the client
    shadow = store._commands
    assert shadow.connection_pool is not client.connection_pool
    assert type(shadow.connection_pool) is type(client.connection_pool)
    assert shadow.get_retry().get_retries() == 0
    shadow_kwargs = shadow.connection_pool.connection_kwargs
    for option in ("host", "port", "db", "socket_timeout", "socket_connect_timeout"):
        assert shadow_kwargs[option] == kwargs[option], option
    assert shadow.execute_command("PING") is True
    no_retries = redis.Redis(
        host=fault_redis.host,
        port=fault_redis.port,
        socket_timeout=SOCKET_TIMEOUT,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
    )
    assert RedisStore(no_retries)._commands is no_retries
    for c in (plain.client, client, no_retries):
        c.close()


@pytest.mark.parametrize("fault_kind", RETRY_FAULTS)
def test_a_client_with_redis_py_default_retries_gives_up_within_twice_its_socket_timeout(
    fault_redis: RedisServer,
    fault_kind: str,
    store_errors: list[StoreError],
    reliability_tally: Callable[[str], Tally],
) -> None:
    tally = reliability_tally("faults")
    client = _default_retries_client(fault_redis)
    retry = client.get_retry()
    retries = retry.get_retries()
    store = RedisStore(client, on_error="deny", error_retry_after=RETRY_AFTER)
    limiter = _limiter(store)
    batch = [probe for probe in probes(store) if probe.sync]
    run = Run("deny", store_errors, tally)
    try:
        assert _from_redis(limiter.try_acquire())
        for probe in batch:
            assert run.check_healthy(probe, _sync_call(probe, store_errors, tally)), probe.name
        client.set("user:key", "before")
        fault = Fault(fault_kind, fault_redis, tally)
        fault.inject()
        try:
            for _ in range(3):
                started = time.monotonic()
                decision = limiter.try_acquire()
                elapsed = time.monotonic() - started
                tally.most("default_retries_client_call_s", elapsed)
                assert _denied_by_the_store(decision), decision
                assert elapsed < BOUND, f"{elapsed:.2f}s"
            for probe in batch:  # every policy, through the store's other paths
                run.check_during(probe, _sync_call(probe, store_errors, tally), fault)
        finally:
            fault.lift()
        _recover_sync(batch, run, store_errors, tally)
        deadline = time.monotonic() + RECOVERY
        while not _from_redis(limiter.try_acquire()):
            assert time.monotonic() < deadline, "the limiter did not recover"
            time.sleep(0.05)
        # The user's client is as it was: same retries, its own commands answered correctly.
        assert client.get_retry() is retry
        assert client.get_retry().get_retries() == retries
        client.set("user:key", "after")
        assert client.get("user:key") == b"after"
        assert client.incr("user:counter") == 1
    finally:
        client.close()


@pytest.mark.parametrize("fault_kind", RETRY_FAULTS)
async def test_an_async_client_with_redis_py_default_retries_gives_up_within_twice_its_timeout(
    fault_redis: RedisServer,
    fault_kind: str,
    anyio_backend: str,
    store_errors: list[StoreError],
    reliability_tally: Callable[[str], Tally],
) -> None:
    tally = reliability_tally("faults")
    if anyio_backend == "asyncio":
        client: Any = redis.asyncio.Redis(
            host=fault_redis.host,
            port=fault_redis.port,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
        )
        assert client.get_retry().get_retries() > 0
    else:  # under trio the store runs a sync client in worker threads
        client = _default_retries_client(fault_redis)
    store = RedisStore(client, on_error="deny", error_retry_after=RETRY_AFTER)
    limiter = _limiter(store)
    batch = probes(store)
    run = Run("deny", store_errors, tally)
    try:
        assert _from_redis(await limiter.atry_acquire())
        for probe in batch:
            assert run.check_healthy(probe, await _async_call(probe, store_errors, tally))
        fault = Fault(fault_kind, fault_redis, tally)
        await anyio.to_thread.run_sync(fault.inject)
        try:
            for _ in range(3):
                started = time.monotonic()
                decision = await limiter.atry_acquire()
                elapsed = time.monotonic() - started
                tally.most("default_retries_client_call_s", elapsed)
                assert _denied_by_the_store(decision), decision
                assert elapsed < BOUND, f"{elapsed:.2f}s"
            for probe in batch:
                run.check_during(probe, await _async_call(probe, store_errors, tally), fault)
        finally:
            await anyio.to_thread.run_sync(fault.lift)
        await anyio.sleep(RETRY_AFTER)
        for probe in [*batch, LimiterProbe(store, limiter)]:
            deadline = time.monotonic() + RECOVERY
            while not run.check_healthy(probe, await _async_call(probe, store_errors, tally)):
                assert time.monotonic() < deadline, f"{probe.name} did not recover"
                await anyio.sleep(0.05)
        if anyio_backend == "asyncio":
            # Calls cut short by the store's deadline gave their connections back, closed:
            # the user's commands on the same pool get their own replies.
            assert not client.connection_pool._in_use_connections
            await client.set("user:key", "after")
            assert await client.get("user:key") == b"after"
            assert await client.incr("user:counter") == 1
            assert client.get_retry().get_retries() > 0
    finally:
        if anyio_backend == "asyncio":
            await client.aclose()
        else:
            client.close()


@pytest.fixture(scope="module")
def fault_cluster() -> Iterator[RedisCluster3]:
    """A three-master cluster of these tests' own: they kill and freeze its masters."""
    cluster = RedisCluster3(redis_binary("redis-server"), redis_binary("redis-cli"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.close()


def _cluster_ok(cluster: RedisCluster3) -> None:
    for node in cluster.nodes:
        node.thaw()
        if not node.running:
            node.start()
    deadline = time.monotonic() + 30
    while not all(cluster._ok(node) for node in cluster.nodes):
        assert time.monotonic() < deadline, "the cluster did not come back"
        time.sleep(0.05)


@pytest.mark.parametrize("fault_kind", RETRY_FAULTS)
async def test_a_cluster_client_with_default_retries_gives_up_within_twice_its_socket_timeout(
    fault_cluster: RedisCluster3,
    fault_kind: str,
    anyio_backend: str,
    reliability_tally: Callable[[str], Tally],
) -> None:
    tally = reliability_tally("faults")
    await anyio.to_thread.run_sync(_cluster_ok, fault_cluster)
    first = fault_cluster.nodes[0]
    options: dict[str, Any] = {
        "host": first.host,
        "port": first.port,
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": SOCKET_TIMEOUT,
    }
    asynchronous = anyio_backend == "asyncio"
    client: Any
    if asynchronous:
        client = redis.asyncio.cluster.RedisCluster(**options)
        await client.initialize()
    else:  # under trio the store runs a sync client in worker threads
        client = await anyio.to_thread.run_sync(lambda: redis.cluster.RedisCluster(**options))
    retries = client.retry.get_retries()
    assert retries > 0  # redis-py's default (10 in redis-py 8)
    store = RedisStore(client, on_error="deny", error_retry_after=RETRY_AFTER)
    limiter = _limiter(store)
    key = store._key(limiter.name, "user:1", limiter.algorithm)
    owner = client.get_node_from_key(key)
    victim = next(node for node in fault_cluster.nodes if node.port == owner.port)
    try:
        assert _from_redis(await limiter.atry_acquire("user:1"))
        if not asynchronous:  # the sync call itself, on this thread
            assert _from_redis(limiter.try_acquire("user:1"))
        tally["faults"] += 1
        tally[f"faults_cluster_{fault_kind}"] += 1
        await anyio.to_thread.run_sync(_break, victim, fault_kind)
        try:
            for _ in range(3):
                started = time.monotonic()
                decision = await limiter.atry_acquire("user:1")
                elapsed = time.monotonic() - started
                tally.most(f"default_retries_cluster_client_call_s_{fault_kind}", elapsed)
                assert _denied_by_the_store(decision), decision
                assert elapsed < BOUND, f"{elapsed:.2f}s"
        finally:
            await anyio.to_thread.run_sync(_mend, victim, fault_kind)
        await anyio.to_thread.run_sync(_cluster_ok, fault_cluster)
        deadline = time.monotonic() + RECOVERY
        while not _from_redis(await limiter.atry_acquire("user:1")):
            assert time.monotonic() < deadline, "the limiter did not recover"
            await anyio.sleep(0.05)
        assert client.retry.get_retries() == retries
        if asynchronous:
            await client.set("user:key", "after")
            assert await client.get("user:key") == b"after"
        else:
            client.set("user:key", "after")
            assert client.get("user:key") == b"after"
    finally:
        if asynchronous:
            await client.aclose()
        else:
            client.close()
