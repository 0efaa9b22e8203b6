"""The two services of the storm demo (examples/storm.py), each run in a process of its own.

``python examples/storm_services.py upstream --port N`` serves the flaky upstream;
``python examples/storm_services.py gateway --port N --upstream URL --mode naive|protected
[--redis URL]`` serves the gateway in front of it. Both bind 127.0.0.1 only, and both stop by
themselves when the process that started them goes away.

The upstream has a fixed pool of workers (a semaphore): a request waits for a worker, holds it
for the service time of the phase it is in, then answers. The demo's driver moves it through its
phases with ``POST /_phase/<name>``:

=========== ==============================================================================
healthy     200 (GET) or 201 (POST) after 5 ms
slow        the same answers after 150 ms: 2 workers serve 13 requests a second at most,
            fewer than the clients' 20 calls a second
failing     503 after 100 ms (a dependency times out; no worker is held)
throttled   429 with ``Retry-After: 1`` at once
recovered   as healthy
=========== ==============================================================================

A ``POST /orders`` that succeeds is a side effect (an order placed), counted per
``Idempotency-Key``: a key counted twice is a duplicated side effect. The upstream also runs
`DeadlineMiddleware`: when a caller sends its remaining time (``grpc-timeout``), a request whose
deadline passes while it waits for a worker is dropped, and one that could not finish in time is
refused with a 503 before any work. Without the header (the naive gateway sends none) every
request is served to the end, even when nobody waits for the answer any more.

The gateway forwards ``GET /work`` and ``POST /orders`` to the upstream, in one of two modes:

* ``naive``: a plain ``httpx.AsyncClient``; nothing else.
* ``protected``: `DeadlineMiddleware` (a 400 ms budget per request), `RateLimitMiddleware`
  (a token bucket per client, keyed by ``X-Client-Id``) and `IdempotencyMiddleware` around the
  app, which calls the upstream through `AsyncResilientTransport`: a retry with a retry budget,
  a circuit breaker per origin, and the deadline propagated in ``grpc-timeout``.

Both count what they do and report it at ``GET /_stats`` (JSON), with the CPU time their
process used, so that the driver can check that no process was short of CPU.
"""

from __future__ import annotations

import argparse
import math
import os
import threading
import time
import uuid
from collections import Counter
from typing import Any

import anyio
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from resilient import (
    Backoff,
    CircuitBreaker,
    CircuitOpenError,
    DeadlineExceeded,
    Retry,
    RetryBudget,
    TimeWindow,
    TokenBucket,
    remaining,
)
from resilient.instrumentation import CircuitStateChanged
from resilient.integrations.asgi import (
    DeadlineMiddleware,
    IdempotencyMiddleware,
    RateLimitMiddleware,
    header_key,
)
from resilient.integrations.httpx import AsyncResilientTransport
from resilient.stores import MemoryStore, RedisStore

PHASES = ("healthy", "slow", "failing", "throttled", "recovered")
WORKERS = 2
#: Seconds a worker is held per request, by phase (throttled answers without a worker).
SERVICE = {"healthy": 0.005, "slow": 0.15, "failing": 0.1, "throttled": 0.0, "recovered": 0.005}
#: The upstream starts work only with this much time to spare before the caller's deadline.
SPARE = 0.1
#: The protected gateway's budget for each request, in seconds.
GATEWAY_DEADLINE = 0.4

Scope = dict[str, Any]
Receive = Any
Send = Any


def cpu_seconds() -> float:
    """CPU time this process has used, in seconds (every thread)."""
    return time.process_time()


# -- the upstream -------------------------------------------------------------------------------


class Upstream:
    """The flaky service: its phase, its workers, and what it received."""

    def __init__(self) -> None:
        self.phase = "healthy"
        self.workers: anyio.Semaphore | None = None  # made on first use, in the event loop
        self.inflight = 0
        self.reset()

    def reset(self) -> None:
        """Forget what was received so far."""
        # (arrival time, phase at arrival, method, status); 499: dropped at the caller's deadline
        self.requests: list[tuple[float, str, str, int]] = []
        self.side_effects: Counter[str] = Counter()

    def app(self) -> Any:
        async def work(request: Request) -> Response:
            return await self.serve(request)

        async def set_phase(request: Request) -> Response:
            phase = request.path_params["phase"]
            if phase not in PHASES:
                return JSONResponse({"error": f"unknown phase {phase!r}"}, status_code=400)
            self.phase = phase
            return Response(status_code=204)

        async def reset(request: Request) -> Response:
            self.reset()
            self.phase = "healthy"
            return Response(status_code=204)

        async def stats(request: Request) -> Response:
            return JSONResponse(
                {
                    "inflight": self.inflight,
                    "cpu": cpu_seconds(),
                    "requests": self.requests,
                    "side_effects": sum(self.side_effects.values()),
                    "duplicated": sum(n - 1 for n in self.side_effects.values() if n > 1),
                }
            )

        async def health(request: Request) -> Response:
            return Response(status_code=204)

        routes = [
            Route("/work", work, methods=["GET"]),
            Route("/orders", work, methods=["POST"]),
            Route("/_phase/{phase}", set_phase, methods=["POST"]),
            Route("/_reset", reset, methods=["POST"]),
            Route("/_stats", stats),
            Route("/_health", health),
        ]
        return DeadlineMiddleware(Starlette(routes=routes))

    async def serve(self, request: Request) -> Response:
        arrived = time.time()
        arrival_phase = self.phase
        status = 499  # stays so if the caller's deadline cancels the request while it waits
        self.inflight += 1
        try:
            if arrival_phase == "throttled":
                status = 429
                return JSONResponse(
                    {"error": "too many requests"}, status_code=429, headers={"Retry-After": "1"}
                )
            if arrival_phase == "failing":
                await anyio.sleep(SERVICE["failing"])  # a dependency times out: no worker held
                status = 503
                return JSONResponse({"error": "unavailable"}, status_code=503)
            if self.workers is None:
                self.workers = anyio.Semaphore(WORKERS)
            async with self.workers:
                phase = self.phase  # a request behaves as the phase in which its work starts
                if phase == "throttled":
                    status = 429
                    return JSONResponse(
                        {"error": "too many requests"},
                        status_code=429,
                        headers={"Retry-After": "1"},
                    )
                if phase == "failing":  # what waited for a worker fails at once
                    status = 503
                    return JSONResponse({"error": "unavailable"}, status_code=503)
                service = SERVICE[phase]
                left = remaining()
                if left is not None and left < service + SPARE:
                    status = 503  # refused before any work: it could not finish in time
                    return JSONResponse({"error": "no time left"}, status_code=503)
                await anyio.sleep(service)
                if request.method == "POST":
                    key = request.headers.get("idempotency-key", "") or str(uuid.uuid4())
                    self.side_effects[key] += 1  # the order is placed
                    status = 201
                    return JSONResponse({"order": key}, status_code=201)
                status = 200
                return JSONResponse({"ok": True})
        finally:
            self.inflight -= 1
            self.requests.append((arrived, arrival_phase, request.method, status))


# -- the gateway --------------------------------------------------------------------------------


class GatewayStats:
    """What the gateway answered, and its circuit breakers' state changes."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget what was counted so far."""
        self.answered: Counter[str] = Counter()  # "<origin> <status>"
        self.breaker_open = 0  # refused by an open circuit, without a request
        self.transitions: list[tuple[float, str, str]] = []

    def as_json(self) -> dict[str, Any]:
        """The counts, as /_stats reports them."""
        answered = self.answered
        return {
            "cpu": cpu_seconds(),
            "answered": dict(answered),
            "rate_limited": answered["gateway 429"],
            "in_flight_409": answered["gateway 409"],
            "breaker_open": self.breaker_open,
            "replayed": answered["replay 201"],
            "shed": answered["gateway 429"] + answered["gateway 409"] + self.breaker_open,
            "transitions": self.transitions,
        }


class Counting:
    """Outermost ASGI wrapper: counts each answer by status and by who made it."""

    def __init__(self, app: Any, stats: GatewayStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_"):
            await self.app(scope, receive, send)
            return

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", ())}
                if b"idempotent-replayed" in names:
                    origin = "replay"
                elif b"x-upstream-status" in names:
                    origin = "upstream"
                else:
                    origin = "gateway"
                self.stats.answered[f"{origin} {message['status']}"] += 1
            await send(message)

        await self.app(scope, receive, counting_send)


def problem(status: int, title: str, retry_after: float | None = None) -> Response:
    """An application/problem+json answer made by the gateway itself."""
    headers = {} if retry_after is None else {"Retry-After": str(max(1, math.ceil(retry_after)))}
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status},
        status_code=status,
        headers=headers,
        media_type="application/problem+json",
    )


def gateway_app(mode: str, upstream: str, redis_url: str | None) -> Any:
    """The gateway, ``naive`` or ``protected``, forwarding to ``upstream``."""
    stats = GatewayStats()
    # A fresh connection per request: under this storm, httpx's pool stalled on reused
    # connections (requests assigned to idle connections that never sent them).
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=0)
    if mode == "naive":
        client = httpx.AsyncClient(base_url=upstream, timeout=30.0, limits=limits)
    else:

        def breaker(origin: str) -> CircuitBreaker:
            def record(event: CircuitStateChanged) -> None:
                stats.transitions.append((time.time(), event.old, event.new))

            return CircuitBreaker(
                origin,
                failure_rate=0.6,
                window=TimeWindow(2.0),
                minimum_calls=10,
                open_for=0.5,
                half_open_calls=2,
                on_state_change=record,
            )

        transport = AsyncResilientTransport(
            httpx.AsyncHTTPTransport(limits=limits),
            retry=Retry(
                attempts=2,
                backoff=Backoff.exponential(initial=0.02, maximum=0.1, jitter="full"),
                # Retries may add 10% to the requests, plus one a second.
                budget=RetryBudget(ratio=0.1, minimum_per_second=1.0, window=2.0),
                name="upstream",
            ),
            breaker_factory=breaker,
            propagate_deadline=True,
        )
        client = httpx.AsyncClient(transport=transport, base_url=upstream, timeout=30.0)

    async def forward(request: Request) -> Response:
        headers = {}
        key = request.headers.get("idempotency-key")
        if key is not None:
            headers["Idempotency-Key"] = key
        body = await request.body()
        try:
            answer = await client.request(
                request.method, request.url.path, headers=headers, content=body
            )
        except CircuitOpenError as exc:
            stats.breaker_open += 1
            return problem(503, "circuit open", exc.retry_after)
        except (DeadlineExceeded, httpx.TimeoutException):
            return problem(504, "upstream timed out")
        except httpx.TransportError:
            return problem(502, "upstream unreachable")
        relayed = {"X-Upstream-Status": str(answer.status_code)}
        if "retry-after" in answer.headers:
            relayed["Retry-After"] = answer.headers["retry-after"]
        return Response(
            answer.content,
            status_code=answer.status_code,
            headers=relayed,
            media_type=answer.headers.get("content-type"),
        )

    async def stats_route(request: Request) -> Response:
        return JSONResponse(stats.as_json())

    async def reset(request: Request) -> Response:
        stats.reset()
        return Response(status_code=204)

    async def health(request: Request) -> Response:
        return Response(status_code=204)

    app: Any = Starlette(
        routes=[
            Route("/work", forward, methods=["GET"]),
            Route("/orders", forward, methods=["POST"]),
            Route("/_stats", stats_route),
            Route("/_reset", reset, methods=["POST"]),
            Route("/_health", health),
        ]
    )
    if mode == "protected":
        if redis_url is None:
            limiter_store: MemoryStore | RedisStore = MemoryStore()
            idempotency_store: MemoryStore | RedisStore = MemoryStore()
        else:
            prefix = f"storm-{uuid.uuid4().hex[:8]}"
            limiter_store = RedisStore.from_url(redis_url, asynchronous=True, prefix=prefix)
            idempotency_store = RedisStore.from_url(
                redis_url, asynchronous=True, prefix=prefix, socket_timeout=1.0
            )
        app = IdempotencyMiddleware(app, store=idempotency_store, ttl=600, lock_timeout=5)
        app = RateLimitMiddleware(
            app,
            # Each client may send 1.5 requests a second (bursts of 3): 1.5 times its steady pace.
            limiter=TokenBucket(rate=1.2, capacity=2, store=limiter_store, name="per-client"),
            key=header_key("x-client-id"),
        )
        app = DeadlineMiddleware(app, default=GATEWAY_DEADLINE, maximum=GATEWAY_DEADLINE)
    return Counting(app, stats)


# -- running one service -------------------------------------------------------------------------


def watch_parent(server: uvicorn.Server) -> None:
    """Stop ``server`` once the process that started this one is gone."""
    parent = os.getppid()

    def watch() -> None:
        while not server.should_exit:
            if os.getppid() != parent:
                server.should_exit = True
                return
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description="A service of the storm demo.")
    parser.add_argument("role", choices=("upstream", "gateway"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", help="the upstream's base URL (gateway only)")
    parser.add_argument("--mode", choices=("naive", "protected"), default="naive")
    parser.add_argument("--redis", metavar="URL", help="Redis for the gateway's stores")
    args = parser.parse_args()
    if args.role == "upstream":
        app = Upstream().app()
    else:
        if not args.upstream:
            parser.error("the gateway needs --upstream")
        app = gateway_app(args.mode, args.upstream, args.redis)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    watch_parent(server)
    server.run()


if __name__ == "__main__":
    main()
