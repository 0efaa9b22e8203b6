"""Idempotency keys: what the decorator and the middleware add, in memory and in Redis.

Memory: ``@idempotent`` on a trivial function, first calls (a new key each time) and replays,
against the bare call; ``IdempotencyMiddleware`` in front of a trivial ASGI app, first-time POSTs
(a new key each) and replays, against the bare app, driven with raw ASGI messages (no server,
no client) so that only the middleware's own work is measured.

Redis: a first call and a replay against a PING round trip, on one sync client (``measure_paired``,
medians), and the number of commands each sends, counted on the client.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

from ._harness import Report, measure, measure_async, measure_paired, subtract_baseline

ROOT = Path(__file__).resolve().parent.parent


def _decorator(report: Report) -> None:
    import resilient
    from resilient.stores import MemoryStore

    group = "idempotent decorator, MemoryStore"
    store = MemoryStore(max_keys=10_000_000)

    def bare(order_id: str, amount: int) -> int:
        return amount

    charge = resilient.idempotent(store=store, key=lambda order_id, amount: order_id)(bare)
    fresh = map(str, itertools.count())
    keys = fresh.__next__
    base = report.add(group, "bare call f('k', 5)", measure(lambda: bare(keys(), 5)), baseline=True)
    first = report.add(
        group,
        "first call (a new key each time)",
        measure(lambda: charge(keys(), 5), number=200_000, repeat=5),
    )
    charge("replayed", 5)
    replay = report.add(group, "replay", measure(lambda: charge("replayed", 5)))
    first_added = subtract_baseline(first, base)
    replay_added = subtract_baseline(replay, base)
    report.check(
        "idempotent adds <= 5 us to a first call (MemoryStore)",
        first_added <= 5e-6,
        f"{first_added * 1e6:.2f} us",
    )
    report.check(
        "idempotent replay <= 3 us (MemoryStore)",
        replay_added <= 3e-6,
        f"{replay_added * 1e6:.2f} us",
    )


def _middleware(report: Report) -> None:
    from resilient.integrations.asgi import IdempotencyMiddleware
    from resilient.stores import MemoryStore

    group = "IdempotencyMiddleware, MemoryStore (asyncio)"

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

    async def bare() -> None:
        await app(scope(b"k%d" % next(counter)), receive, send)

    async def first() -> None:
        await middleware(scope(b"k%d" % next(counter)), receive, send)

    replayed = scope(b"replayed")

    async def replay() -> None:
        await middleware(replayed, receive, send)

    base = report.add(group, "bare app", measure_async(bare, number=50_000), baseline=True)
    first_time = report.add(
        group, "first-time POST (a new key each)", measure_async(first, number=50_000)
    )
    report.add(group, "replayed POST", measure_async(replay, number=50_000))
    added = subtract_baseline(first_time, base)
    report.check(
        "IdempotencyMiddleware adds <= 25 us to a first-time POST (MemoryStore)",
        added <= 25e-6,
        f"{added * 1e6:.2f} us",
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
            charge("counted")
            first = len(commands)
            commands.clear()
            charge("counted")
            replay = len(commands)
        finally:
            del client.execute_command
        report.check(
            "Redis: a first call <= 2 round trips, a replay 1",
            first <= 2 and replay == 1,
            f"first {first}, replay {replay}; "
            f"{rows['first call (claim + complete)'] / rows['PING (one round trip)']:.2f}x and "
            f"{rows['replay (claim)'] / rows['PING (one round trip)']:.2f}x a PING",
        )
        client.close()


def run(report: Report) -> None:
    _decorator(report)
    _middleware(report)
    _redis(report)
