"""A retry storm: many clients, one upstream that goes down, with and without resilient.

An upstream HTTP service (Starlette on uvicorn, on 127.0.0.1 and a free port) goes through three
phases: healthy, an outage in which every request fails slowly with a 503, and recovery. A fleet
of clients calls it throughout, twice:

* naive: a failed call is retried at once, up to 5 attempts, as hand-written retry loops do;
* resilient: the same clients share one `resilient.Pipeline`: a `Retry` with jittered
  exponential backoff and a shared `RetryBudget`, a `CircuitBreaker` on a sliding `TimeWindow`,
  and a `Bulkhead`.

The table shows, per phase, the calls the clients made, the requests the upstream received, and
their ratio (the load amplification), with the outcome of the calls; below it come the circuit
breaker's state changes. Everything runs on 127.0.0.1 for about 17 seconds (``--quick``: about
5) and stops by itself.

Run it with ``make demo``, or ``python examples/storm.py [--quick]`` with the ``demo`` extra
installed. docs/demo.md explains the output.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import anyio.abc
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from resilient import (
    Backoff,
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    Pipeline,
    Retry,
    RetryBudget,
    TimeWindow,
    instrumentation,
)

STRATEGIES = ("naive", "resilient")
NAIVE_ATTEMPTS = 5


@dataclass(frozen=True)
class Scenario:
    """How long each phase lasts and how the fleet and the upstream behave."""

    phases: tuple[tuple[str, float], ...]
    clients: int = 20
    interval: float = 0.25  # each client makes a call every interval seconds
    healthy_latency: float = 0.002
    outage_latency: float = 0.05  # an overloaded upstream fails slowly
    breaker_window: float = 1.0  # the circuit breaker's sliding window, in seconds
    open_for: float = 0.5  # seconds the circuit stays open before trial calls

    @property
    def seconds(self) -> float:
        return sum(seconds for _, seconds in self.phases)


FULL = Scenario(phases=(("healthy", 2.0), ("outage", 3.5), ("recovery", 2.5)))
QUICK = Scenario(
    phases=(("healthy", 0.5), ("outage", 1.0), ("recovery", 0.8)),
    breaker_window=0.5,
    open_for=0.25,
)


class UpstreamDown(Exception):
    """The upstream answered with a server error."""


# -- the upstream ------------------------------------------------------------------------------


@dataclass
class Upstream:
    """The flaky service: the phase it is in and how many requests it received in each."""

    scenario: Scenario
    phase: str = "healthy"
    requests: Counter[str] = field(default_factory=Counter)

    def app(self) -> Starlette:
        async def work(request: Request) -> JSONResponse:
            phase = self.phase
            self.requests[phase] += 1
            if phase == "outage":
                await anyio.sleep(self.scenario.outage_latency)
                return JSONResponse({"error": "overloaded"}, status_code=503)
            await anyio.sleep(self.scenario.healthy_latency)
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/work", work)])


class Server:
    """uvicorn serving an app in a thread of its own, on a socket bound to 127.0.0.1:0."""

    def __init__(self, app: Starlette) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))  # port 0: the kernel picks a free port
        self.port: int = self.socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> Server:
        self.thread.start()
        give_up = time.monotonic() + 10.0
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > give_up:
                raise RuntimeError("the upstream server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10.0)
        self.socket.close()


# -- the clients -------------------------------------------------------------------------------


async def call_once(client: httpx.AsyncClient, url: str) -> None:
    """One request; a 5xx answer raises UpstreamDown."""
    response = await client.get(url)
    if response.status_code >= 500:
        raise UpstreamDown(response.status_code)
    response.raise_for_status()


FAILURES = (UpstreamDown, httpx.TransportError)


async def naive_call(client: httpx.AsyncClient, url: str) -> None:
    """Retry at once, up to NAIVE_ATTEMPTS attempts: what a hand-written loop often does."""
    for attempt in range(1, NAIVE_ATTEMPTS + 1):
        try:
            await call_once(client, url)
        except FAILURES:
            if attempt == NAIVE_ATTEMPTS:
                raise
        else:
            return


def resilient_pipeline(scenario: Scenario) -> Pipeline:
    """One pipeline shared by the whole fleet: retry, then circuit breaker, then bulkhead."""
    return Pipeline(
        Retry(
            on=FAILURES,
            attempts=NAIVE_ATTEMPTS,
            backoff=Backoff.exponential(initial=0.05, maximum=0.8, jitter="full"),
            # Retries may add at most 10% to the calls, plus 2 per second.
            budget=RetryBudget(ratio=0.1, minimum_per_second=2.0, window=2.0),
            name="upstream",
        ),
        CircuitBreaker(
            "upstream",
            failure_rate=0.5,
            window=TimeWindow(scenario.breaker_window),
            minimum_calls=10,
            open_for=scenario.open_for,
            half_open_calls=2,
        ),
        Bulkhead(
            scenario.clients // 2, max_waiting=scenario.clients, max_wait=0.1, name="upstream"
        ),
    )


@dataclass
class Tally:
    """What the clients saw, per phase (the phase in which each call started)."""

    calls: Counter[str] = field(default_factory=Counter)
    ok: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    waited: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    last_error_at: float = 0.0  # when the last call that did not succeed returned


async def run_fleet(
    scenario: Scenario,
    upstream: Upstream,
    url: str,
    call: Callable[[httpx.AsyncClient, str], Awaitable[None]],
) -> tuple[Tally, dict[str, float]]:
    """Run the fleet through every phase; return the tally and when each phase started.

    Each client calls at a steady pace, as the requests of its own users arrive, whether or not
    its earlier calls have returned: a slow upstream means more calls in flight, not fewer.
    """
    tally = Tally()
    starts: dict[str, float] = {}

    async def one_call(client: httpx.AsyncClient) -> None:
        phase = upstream.phase
        tally.calls[phase] += 1
        began = time.monotonic()
        try:
            await call(client, url)
        except (CircuitOpenError, BulkheadFullError):
            tally.rejected[phase] += 1
            tally.last_error_at = time.monotonic()
        except FAILURES:
            tally.failed[phase] += 1
            tally.last_error_at = time.monotonic()
        else:
            tally.ok[phase] += 1
        tally.waited[phase] += time.monotonic() - began

    async def client_loop(
        client: httpx.AsyncClient, calls: anyio.abc.TaskGroup, offset: float, stop_at: float
    ) -> None:
        next_at = time.monotonic() + offset
        while next_at < stop_at:  # at most seconds / interval calls
            await anyio.sleep(max(0.0, next_at - time.monotonic()))
            calls.start_soon(one_call, client)
            next_at += scenario.interval

    limits = httpx.Limits(max_connections=200, max_keepalive_connections=scenario.clients)
    async with httpx.AsyncClient(timeout=2.0, limits=limits, trust_env=False) as client:
        # Every call is bounded (a 2 s timeout, 5 attempts), so the fleet is done soon after the
        # last phase; the outer limit is only a safety net.
        with anyio.move_on_after(scenario.seconds + 15.0):
            async with anyio.create_task_group() as calls:
                stop_at = time.monotonic() + scenario.seconds
                async with anyio.create_task_group() as clients:
                    for index in range(scenario.clients):
                        offset = scenario.interval * index / scenario.clients
                        clients.start_soon(client_loop, client, calls, offset, stop_at)
                    for phase, seconds in scenario.phases:
                        upstream.phase = phase
                        starts[phase] = time.monotonic()
                        await anyio.sleep(seconds)
    return tally, starts


# -- running and reporting ---------------------------------------------------------------------


@dataclass
class Run:
    """One strategy's run: what the clients saw and what the upstream received."""

    strategy: str
    tally: Tally
    requests: Counter[str]
    starts: dict[str, float]  # when each phase began (time.monotonic())
    transitions: list[tuple[float, str, str]]  # (when, old state, new state) of the breaker

    def amplification(self, phase: str) -> float:
        return self.requests[phase] / max(self.tally.calls[phase], 1)

    def phase_at(self, moment: float) -> tuple[str, float]:
        """The phase in progress at ``moment``, and the seconds since it began."""
        phase, began = min(self.starts.items(), key=lambda item: item[1])
        for name, at in self.starts.items():
            if began < at <= moment:
                phase, began = name, at
        return phase, moment - began


def run(strategy: str, scenario: Scenario, upstream: Upstream, url: str) -> Run:
    upstream.phase = "healthy"
    upstream.requests.clear()
    transitions: list[tuple[float, str, str]] = []

    def on_event(event: instrumentation.Event) -> None:
        if isinstance(event, instrumentation.CircuitStateChanged):
            transitions.append((time.monotonic(), event.old, event.new))

    if strategy == "naive":
        call: Callable[[httpx.AsyncClient, str], Awaitable[None]] = naive_call
    else:
        pipeline = resilient_pipeline(scenario)

        async def resilient_call(client: httpx.AsyncClient, url: str) -> None:
            await pipeline.acall(call_once, client, url)

        call = resilient_call
    instrumentation.subscribe(on_event)
    try:
        tally, starts = anyio.run(run_fleet, scenario, upstream, url, call)
    finally:
        instrumentation.unsubscribe(on_event)
    return Run(strategy, tally, Counter(upstream.requests), starts, transitions)


COLUMNS = (
    ("strategy", "<9"),
    ("phase", "<8"),
    ("secs", ">4"),
    ("calls", ">6"),
    ("requests", ">8"),
    ("req/call", ">8"),
    ("req/s", ">6"),
    ("ok", ">6"),
    ("failed", ">6"),
    ("rejected", ">8"),
    ("ms/call", ">7"),
)


def row(*values: object) -> str:
    return "  ".join(
        f"{value:{spec}}" for value, (_, spec) in zip(values, COLUMNS, strict=True)
    ).rstrip()


def table(scenario: Scenario, runs: list[Run]) -> list[str]:
    lines = [row(*(name for name, _ in COLUMNS))]
    for result in runs:
        tally = result.tally
        for phase, seconds in scenario.phases:
            calls = tally.calls[phase]
            lines.append(
                row(
                    result.strategy,
                    phase,
                    f"{seconds:.1f}",
                    calls,
                    result.requests[phase],
                    f"{result.amplification(phase):.2f}",
                    f"{result.requests[phase] / seconds:.0f}",
                    tally.ok[phase],
                    tally.failed[phase],
                    tally.rejected[phase],
                    f"{1000 * tally.waited[phase] / max(calls, 1):.1f}",
                )
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description="A retry storm, with and without resilient.")
    parser.add_argument(
        "--quick", action="store_true", help="shorter phases (about 5 s in all), for tests"
    )
    scenario = QUICK if parser.parse_args().quick else FULL

    print(
        f"resilient storm demo: {scenario.clients} clients, one call every "
        f"{scenario.interval:g}s each, against one upstream on 127.0.0.1"
    )
    print("phases: " + ", ".join(f"{name} {seconds:g}s" for name, seconds in scenario.phases))
    upstream = Upstream(scenario)
    with Server(upstream.app()) as server:
        url = f"http://127.0.0.1:{server.port}/work"
        runs = [run(strategy, scenario, upstream, url) for strategy in STRATEGIES]
    guarded = runs[-1]

    print()
    for line in table(scenario, runs):
        print(line)

    print()
    print("circuit breaker 'upstream', resilient run (time since the phase began):")
    for moment, old, new in guarded.transitions:
        phase, since = guarded.phase_at(moment)
        print(f"  {phase:<8} {'+' + format(since, '.2f') + 's':>7}  {old} -> {new}")
    if not guarded.transitions:
        print("  (no state changes)")

    print()
    seconds = dict(scenario.phases)
    for result in runs:
        outage = result.requests["outage"] / seconds["outage"]
        healthy = result.requests["healthy"] / seconds["healthy"]
        print(
            f"outage, {result.strategy}: {result.amplification('outage'):.2f} upstream requests "
            f"per call, {outage:.0f} req/s ({outage / max(healthy, 1e-9):.1f}x the healthy load)"
        )
    for result in runs:
        back = max(0.0, result.tally.last_error_at - result.starts["recovery"])
        print(f"recovery, {result.strategy}: every call succeeds from +{back:.2f}s on")


if __name__ == "__main__":
    main()
