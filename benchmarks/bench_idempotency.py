"""Idempotency keys: what the decorator and the middleware add, in memory and in Redis.

Memory: ``@idempotent`` on a trivial function, first calls (a new key each time) and replays,
beside the bare call; ``IdempotencyMiddleware`` in front of a trivial ASGI app, first-time POSTs
(a new key each) and replays, beside the bare app, driven with raw ASGI messages (no server, no
client) so that only the middleware's own work is measured.

The candidates of a group take turns in one process (`_interleaved`): a batch of calls each,
the order rotating from round to round, many rounds. A row is the median over the rounds, in
CPU time of the thread (``time.thread_time_ns``: the work the call does, whatever else the
machine runs), with the wall time beside it. The targets are judged on CPU time; the checks
give both.

Redis: a first call and a replay against a PING round trip, on one sync client (``measure_paired``,
medians), and the number of commands each sends, counted on the client.
"""

from __future__ import annotations

import gc
import itertools
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from ._harness import Report, measure_paired

ROOT = Path(__file__).resolve().parent.parent

#: The targets, in seconds of CPU time added to the bare call.
FIRST_CALL_TARGET = 5e-6
REPLAY_TARGET = 3e-6
MIDDLEWARE_TARGET = 25e-6

Timings = dict[str, tuple[float, float]]  # name -> (CPU, wall) seconds per call


def _order(names: list[str], round_: int) -> list[str]:
    shift = round_ % len(names)
    return names[shift:] + names[:shift]


def _medians(cpu: dict[str, list[int]], wall: dict[str, list[int]], batch: int) -> Timings:
    return {
        name: (
            statistics.median(cpu[name]) / batch / 1e9,
            statistics.median(wall[name]) / batch / 1e9,
        )
        for name in cpu
    }


def _interleaved(
    candidates: dict[str, Callable[[], object]], *, batch: int, rounds: int
) -> Timings:
    """``(CPU, wall)`` seconds per call of each candidate, a callable making ``batch`` calls.

    The candidates take turns, the first of each round rotating, so that a busy spell of the
    machine lands on all of them alike; medians over ``rounds``. The garbage collector runs
    between rounds, never inside a timed batch.
    """
    names = list(candidates)
    for fn in candidates.values():  # warm up
        fn()
    cpu: dict[str, list[int]] = {name: [] for name in names}
    wall: dict[str, list[int]] = {name: [] for name in names}
    enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(rounds):
            for name in _order(names, i):
                fn = candidates[name]
                wall_start = time.perf_counter_ns()
                cpu_start = time.thread_time_ns()
                fn()
                cpu[name].append(time.thread_time_ns() - cpu_start)
                wall[name].append(time.perf_counter_ns() - wall_start)
            gc.collect()
    finally:
        if enabled:
            gc.enable()
    return _medians(cpu, wall, batch)


async def _interleaved_async(
    candidates: dict[str, Callable[[], Awaitable[object]]], *, batch: int, rounds: int
) -> Timings:
    """`_interleaved` for coroutine functions, all inside the running event loop."""
    names = list(candidates)
    for fn in candidates.values():
        await fn()
    cpu: dict[str, list[int]] = {name: [] for name in names}
    wall: dict[str, list[int]] = {name: [] for name in names}
    enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(rounds):
            for name in _order(names, i):
                fn = candidates[name]
                wall_start = time.perf_counter_ns()
                cpu_start = time.thread_time_ns()
                await fn()
                cpu[name].append(time.thread_time_ns() - cpu_start)
                wall[name].append(time.perf_counter_ns() - wall_start)
            gc.collect()
    finally:
        if enabled:
            gc.enable()
    return _medians(cpu, wall, batch)


def _record(report: Report, group: str, rows: Timings, baseline: str) -> None:
    for name, (cpu, wall) in rows.items():
        report.add(group, name, cpu, baseline=name == baseline, note=f"wall {wall * 1e9:.0f} ns")


def _check(
    report: Report,
    what: str,
    row: tuple[float, float],
    base: tuple[float, float],
    target: float,
    beside: str,
) -> None:
    cpu = max(0.0, row[0] - base[0])
    wall = max(0.0, row[1] - base[1])
    report.check(
        f"{what} <= {target * 1e6:g} us (CPU time)",
        cpu <= target,
        f"{cpu * 1e6:.2f} us CPU, {wall * 1e6:.2f} us wall, beyond {beside}",
    )


def _decorator(report: Report) -> None:
    import resilient
    from resilient.stores import MemoryStore

    group = "idempotent decorator, MemoryStore (CPU time)"
    store = MemoryStore(max_keys=10_000_000)

    def bare(order_id: str, amount: int) -> int:
        return amount

    charge = resilient.idempotent(store=store, key=lambda order_id, amount: order_id)(bare)
    charge("replayed", 5)
    fresh = map(str, itertools.count()).__next__
    batch = 1_000

    def new_keys(fn: Callable[[str, int], object]) -> Callable[[], None]:
        def run() -> None:  # the keys are made inside the batch for the bare call too
            for key in [fresh() for _ in range(batch)]:
                fn(key, 5)

        return run

    def one_key(fn: Callable[[str, int], object]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(batch):
                fn("replayed", 5)

        return run

    bare_new, bare_one = "bare call f(new key, 5)", "bare call f('replayed', 5)"
    first, replay = "first call (a new key each time)", "replay"
    rows = _interleaved(
        {
            bare_new: new_keys(bare),
            first: new_keys(charge),
            bare_one: one_key(bare),
            replay: one_key(charge),
        },
        batch=batch,
        rounds=200,
    )
    _record(report, group, rows, bare_new)
    _check(
        report,
        "idempotent adds to a first call (MemoryStore)",
        rows[first],
        rows[bare_new],
        FIRST_CALL_TARGET,
        "the bare call",
    )
    _check(
        report,
        "idempotent adds to a replay (MemoryStore)",
        rows[replay],
        rows[bare_one],
        REPLAY_TARGET,
        "the bare call",
    )


def _middleware(report: Report) -> None:
    from resilient.integrations.asgi import IdempotencyMiddleware
    from resilient.stores import MemoryStore

    group = "IdempotencyMiddleware, MemoryStore, asyncio (CPU time)"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 201, "headers": [(b"a", b"b")]})
        await send({"type": "http.response.body", "body": b'{"id":1}'})

    middleware = IdempotencyMiddleware(app, store=MemoryStore(max_keys=10_000_000))
    request = {"type": "http.request", "body": b'{"sku":"A1"}', "more_body": False}

    async def receive() -> Any:
        return request

    async def send(message: Any) -> None:
        pass

    counter = itertools.count()

    def scope(key: bytes) -> dict[str, Any]:
        return {
            "type": "http",
            "method": "POST",
            "path": "/orders",
            "raw_path": b"/orders",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"idempotency-key", key)],
        }

    batch = 200

    def new_keys(handler: Any) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            for _ in range(batch):
                await handler(scope(b"k%d" % next(counter)), receive, send)

        return run

    replayed = scope(b"replayed")

    async def replays() -> None:
        for _ in range(batch):
            await middleware(replayed, receive, send)

    bare, first = "bare app", "first-time POST (a new key each)"

    async def main() -> Timings:
        await middleware(replayed, receive, send)  # stored: every later one is a replay
        candidates = {bare: new_keys(app), first: new_keys(middleware), "replayed POST": replays}
        return await _interleaved_async(candidates, batch=batch, rounds=150)

    rows = anyio.run(main)
    _record(report, group, rows, bare)
    _check(
        report,
        "IdempotencyMiddleware adds to a first-time POST (MemoryStore)",
        rows[first],
        rows[bare],
        MIDDLEWARE_TARGET,
        "the bare app",
    )


def _redis(report: Report) -> None:
    sys.path.insert(0, str(ROOT))
    from tests._redis_server import RedisServer, find_redis_server

    binary = find_redis_server()
    if binary is None:
        print("  redis-server not found: Redis rows skipped", flush=True)
        return
    import redis

    import resilient
    from resilient.stores import RedisStore

    with RedisServer(binary) as server:
        client = redis.Redis.from_url(server.url)
        store = RedisStore(client)
        charge = resilient.idempotent(store=store, key=lambda order_id: order_id)(
            lambda order_id: 5
        )
        keys = map(str, itertools.count()).__next__
        charge("replayed")
        execute = client.execute_command
        rows = measure_paired(
            {
                "PING (one round trip)": lambda: execute("PING"),
                "first call (claim + complete)": lambda: charge(keys()),
                "replay (claim)": lambda: charge("replayed"),
            },
            samples=5_000,
        )
        group = "idempotent, Redis on 127.0.0.1"
        for name, seconds in rows.items():
            report.add(group, name, seconds, baseline=name.startswith("PING"))

        commands: list[Any] = []

        def counting(*args: Any, **options: Any) -> Any:
            commands.append(args[0])
            return execute(*args, **options)

        client.execute_command = counting
        try:
            client.ping()
            ping = len(commands)
            commands.clear()
            charge("counted")
            first = len(commands)
            commands.clear()
            charge("counted")
            replay = len(commands)
        finally:
            del client.execute_command
        ping_seconds = rows["PING (one round trip)"]
        report.check(
            "Redis: a first call <= 2 round trips (claim, complete), a replay 1 (claim)",
            first <= 2 and replay == 1,
            f"first {first}, replay {replay}, a PING {ping}; in time "
            f"{rows['first call (claim + complete)'] / ping_seconds:.2f}x and "
            f"{rows['replay (claim)'] / ping_seconds:.2f}x a PING",
        )
        client.close()


def run(report: Report) -> None:
    _decorator(report)
    _middleware(report)
    _redis(report)
