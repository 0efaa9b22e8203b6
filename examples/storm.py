"""A retry storm against a flaky upstream, through a naive gateway and a protected one.

Three processes on 127.0.0.1, each with its own uvicorn (examples/storm_services.py):

* an upstream service with a fixed pool of workers, moved through five phases: healthy, slow,
  failing (503), throttled (429 with ``Retry-After``) and recovered;
* a gateway in front of it, run twice: naive (a plain ``httpx.AsyncClient``), then protected
  (`DeadlineMiddleware`, `RateLimitMiddleware`, `IdempotencyMiddleware`, and the upstream called
  through `AsyncResilientTransport` with a retry budget, a circuit breaker per origin and the
  deadline propagated);
* and this driver: the same fleet of plain httpx clients both times, each calling at a steady
  pace and resending at once after a timeout, a 5xx or a 429, up to 3 attempts; a quarter of
  them place orders (``POST /orders`` with an ``Idempotency-Key``).

It prints a line per phase, then a table comparing the two runs, and writes a PNG timeline
(requests, errors, breaker state and latency over time). It takes about 45 seconds and stops by
itself; ``--quick`` halves the phases. ``--redis URL`` keeps the protected gateway's rate limits
and idempotency records in Redis instead of its memory.

Run it with ``make demo``, or ``python examples/storm.py`` with the ``demo`` extra installed.
docs/demo.md explains the output.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
import httpx

HERE = Path(__file__).resolve().parent
SERVICES = HERE / "storm_services.py"
MODES = ("naive", "protected")
#: The phases during which the upstream is down or refusing: "the outage".
OUTAGE = ("failing", "throttled")
READY_WITHIN = 30.0  # seconds a service may take to answer its first /_health
DRAIN_WITHIN = 15.0  # seconds the upstream may take to finish the naive run's backlog


@dataclass(frozen=True)
class Scenario:
    """How long each phase lasts and what the fleet of clients does."""

    phases: tuple[tuple[str, float], ...]
    clients: int = 20
    posters: int = 5  # of the clients, those that place orders (POST) instead of reading (GET)
    interval: float = 1.0  # each client starts a call every interval seconds, whatever happens
    attempts: int = 3  # a call is resent at once after a timeout, a 5xx or a 429, this many tries
    attempt_timeout: float = 0.8  # seconds a client waits for each answer

    @property
    def seconds(self) -> float:
        return sum(seconds for _, seconds in self.phases)

    @property
    def rate(self) -> float:
        return self.clients / self.interval


FULL = Scenario(
    phases=(
        ("healthy", 1.5),
        ("slow", 5.0),
        ("failing", 3.0),
        ("throttled", 1.5),
        ("recovered", 1.5),
    )
)
QUICK = Scenario(phases=tuple((name, seconds / 2) for name, seconds in FULL.phases))


# -- the services' processes -------------------------------------------------------------------


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Service:
    """A service of examples/storm_services.py in a process of its own, on a free port."""

    def __init__(self, role: str, *options: str) -> None:
        self.role = role
        self.options = options
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        command = [sys.executable, str(SERVICES), role, "--port", str(self.port), *options]
        # A session of its own: a Ctrl-C in the terminal reaches this driver only, which then
        # stops the services itself, in order.
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        """Poll ``/_health`` until it answers, at most READY_WITHIN seconds."""
        give_up = time.monotonic() + READY_WITHIN
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the {self.role} exited at start:\n{self.output()}")
                try:
                    if client.get(self.url + "/_health").status_code == 204:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > give_up:
                    raise RuntimeError(f"the {self.role} did not start in {READY_WITHIN:g}s")
                time.sleep(0.05)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 seconds; always reaps the process."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(5.0)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(5.0)
        finally:
            self.log.close()


@contextlib.contextmanager
def services(redis_url: str | None) -> Iterator[dict[str, Service]]:
    """The upstream and both gateways, started together and always stopped."""
    with contextlib.ExitStack() as stack:
        upstream = Service("upstream")
        stack.callback(upstream.stop)
        started = {"upstream": upstream}
        for mode in MODES:
            options = ["--upstream", upstream.url, "--mode", mode]
            if mode == "protected" and redis_url is not None:
                options += ["--redis", redis_url]
            gateway = Service("gateway", *options)
            stack.callback(gateway.stop)
            started[mode] = gateway
        for service in started.values():
            service.wait_ready()
        yield started


# -- the fleet of clients ----------------------------------------------------------------------


@dataclass
class Call:
    """One call of a client, with its resends."""

    kind: str  # "GET" or "POST"
    phase: str  # the phase in which it started
    started: float  # time.time()
    ended: float = 0.0
    ok: bool = False
    attempts: int = 0
    outcome: str = ""  # the last answer: a status code, "timeout" or "error"

    @property
    def latency(self) -> float:
        return self.ended - self.started


@dataclass
class Run:
    """What one run measured, on the clients' side and from the services' counts."""

    mode: str
    scenario: Scenario
    calls: list[Call] = field(default_factory=list)
    phase_starts: dict[str, float] = field(default_factory=dict)
    ended: float = 0.0
    upstream: dict[str, Any] = field(default_factory=dict)
    gateway: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # share of one core, per process

    def latencies(self) -> list[float]:
        return sorted(call.latency for call in self.calls)

    def percentile(self, fraction: float) -> float:
        """Nearest-rank percentile of the calls' latencies, in seconds."""
        values = self.latencies()
        if not values:
            return 0.0
        rank = max(1, round(fraction * len(values) + 0.5 - 1e-9))
        return values[min(rank, len(values)) - 1]

    def success_rate(self) -> float:
        return sum(call.ok for call in self.calls) / max(len(self.calls), 1)

    def outage_requests(self) -> int:
        return sum(1 for _, phase, _, _ in self.upstream["requests"] if phase in OUTAGE)


class Progress:
    """A line per phase; on a terminal, a bar drawn while a phase of over a second runs."""

    WIDTH = 24

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.live = stream.isatty()

    def line(self, run: Run, phase: str, seconds: float, done: float) -> str:
        calls = [call for call in run.calls if call.phase == phase]
        finished = [call for call in calls if call.ended]
        ok = sum(call.ok for call in finished)
        filled = round(self.WIDTH * min(done / seconds, 1.0))
        bar = "#" * filled + "." * (self.WIDTH - filled)
        return (
            f"{run.mode:<9} {phase:<9} [{bar}] {min(done, seconds):4.1f}/{seconds:.1f}s  "
            f"{len(calls):4d} calls  {ok:4d} ok  {len(finished) - ok:4d} failed  "
            f"{len(calls) - len(finished):4d} pending"
        )

    async def phase(self, run: Run, phase: str, seconds: float) -> None:
        began = time.monotonic()
        if self.live and seconds > 1.0:
            while (done := time.monotonic() - began) < seconds:
                self.stream.write("\r" + self.line(run, phase, seconds, done))
                self.stream.flush()
                await anyio.sleep(min(0.1, seconds - done))
            self.stream.write("\r")
        else:
            await anyio.sleep(seconds)
        self.stream.write(self.line(run, phase, seconds, seconds) + "\n")
        self.stream.flush()


async def one_call(
    client: httpx.AsyncClient, run: Run, scenario: Scenario, client_id: str, kind: str, phase: str
) -> None:
    """A plain client's call: resend at once after a timeout, a 5xx or a 429."""
    call = Call(kind, phase, time.time())
    run.calls.append(call)
    headers = {"X-Client-Id": client_id}
    if kind == "POST":
        headers["Idempotency-Key"] = str(uuid.uuid4())  # the same for every resend of the call
    try:
        for _ in range(scenario.attempts):
            call.attempts += 1
            try:
                with anyio.fail_after(scenario.attempt_timeout):
                    if kind == "POST":
                        response = await client.post("/orders", headers=headers, content=b"{}")
                    else:
                        response = await client.get("/work", headers=headers)
            except TimeoutError:
                call.outcome = "timeout"
                continue
            except httpx.TransportError:
                call.outcome = "error"
                continue
            call.outcome = str(response.status_code)
            if response.status_code < 400:
                call.ok = True
                break
            if response.status_code != 429 and response.status_code < 500:
                break  # another 4xx: resending would not help
    finally:
        call.ended = time.time()


async def drive(run: Run, gateway: str, upstream: str, progress: Progress) -> None:
    """Run the fleet through every phase, steering the upstream's phase as it goes."""
    scenario = run.scenario
    current = [scenario.phases[0][0]]
    # A fresh connection per request, as in the gateway (see examples/storm_services.py).
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=0)
    async with (
        httpx.AsyncClient(base_url=gateway, timeout=None, limits=limits, trust_env=False) as client,
        httpx.AsyncClient(base_url=upstream, timeout=5.0, trust_env=False) as control,
    ):

        async def client_loop(index: int, calls: Any, stop_at: float) -> None:
            kind = "POST" if index < scenario.posters else "GET"
            client_id = f"client-{index}"
            next_at = time.monotonic() + scenario.interval * index / scenario.clients
            while next_at < stop_at:  # at most seconds / interval calls
                await anyio.sleep(max(0.0, next_at - time.monotonic()))
                calls.start_soon(one_call, client, run, scenario, client_id, kind, current[0])
                next_at += scenario.interval

        # Every call is bounded (attempts x attempt_timeout), so this ends soon after the last
        # phase; the outer limit is only a safety net.
        with anyio.move_on_after(scenario.seconds + 30.0):
            async with anyio.create_task_group() as calls:
                await control.post(f"/_phase/{current[0]}")
                stop_at = time.monotonic() + scenario.seconds
                async with anyio.create_task_group() as fleet:
                    for index in range(scenario.clients):
                        fleet.start_soon(client_loop, index, calls, stop_at)
                    for phase, seconds in scenario.phases:
                        if phase != current[0]:
                            await control.post(f"/_phase/{phase}")
                            current[0] = phase
                        run.phase_starts[phase] = time.time()
                        await progress.phase(run, phase, seconds)
        run.ended = time.time()


def get_json(url: str) -> dict[str, Any]:
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        response = client.get(url)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


def post(url: str) -> None:
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        client.post(url).raise_for_status()


def wait_for_upstream_idle(upstream: str) -> None:
    """Let the upstream finish what it queued (the naive run leaves a backlog), bounded."""
    give_up = time.monotonic() + DRAIN_WITHIN
    while get_json(upstream + "/_stats")["inflight"] and time.monotonic() < give_up:
        time.sleep(0.1)


def run_mode(mode: str, scenario: Scenario, started: dict[str, Service], progress: Progress) -> Run:
    upstream, gateway = started["upstream"].url, started[mode].url
    post(upstream + "/_reset")
    post(gateway + "/_reset")
    run = Run(mode, scenario)
    before = {
        "upstream": get_json(upstream + "/_stats")["cpu"],
        "gateway": get_json(gateway + "/_stats")["cpu"],
        "clients": time.process_time(),
    }
    began = time.monotonic()
    anyio.run(drive, run, gateway, upstream, progress)
    wall = time.monotonic() - began
    run.gateway = get_json(gateway + "/_stats")
    after = {
        "upstream": get_json(upstream + "/_stats")["cpu"],
        "gateway": run.gateway["cpu"],
        "clients": time.process_time(),
    }
    run.cpu = {name: (after[name] - before[name]) / wall for name in before}
    wait_for_upstream_idle(upstream)
    run.upstream = get_json(upstream + "/_stats")
    return run


# -- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """A row of the final table: how to measure it, and which way is better (None: shown only)."""

    label: str
    measure: Callable[[Run], float]
    show: Callable[[float], str]
    better: str | None  # "higher", "lower" or None
    meaning: str


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def millis(value: float) -> str:
    return f"{1000 * value:.0f} ms"


def count(value: float) -> str:
    return f"{value:.0f}"


ROWS = (
    Row(
        "success rate",
        Run.success_rate,
        percent,
        "higher",
        "calls that ended with a 2xx answer, resends included",
    ),
    Row(
        "p50 latency",
        lambda run: run.percentile(0.50),
        millis,
        "lower",
        "median time a client waited for a call to end, resends included",
    ),
    Row(
        "p99 latency",
        lambda run: run.percentile(0.99),
        millis,
        "lower",
        "99th percentile of the same",
    ),
    Row(
        "upstream requests in outage",
        lambda run: run.outage_requests(),
        count,
        "lower",
        "requests that reached the upstream while it was failing or throttling",
    ),
    Row(
        "duplicated side effects",
        lambda run: run.upstream["duplicated"],
        count,
        "lower",
        "orders the upstream placed twice or more for one Idempotency-Key",
    ),
    Row(
        "breaker transitions",
        lambda run: len(run.gateway["transitions"]),
        count,
        None,
        "state changes of the gateway's circuit breaker (the naive gateway has none)",
    ),
    Row(
        "requests shed",
        lambda run: run.gateway["shed"],
        count,
        None,
        "answered by the gateway without the upstream: 429 rate limit, 409 key in flight, "
        "503 circuit open",
    ),
)


def verdict(row: Row, naive: float, protected: float) -> str:
    if row.better is None:
        return "(shown, not compared)"
    if naive == protected:
        return "tie"
    wins = protected > naive if row.better == "higher" else protected < naive
    return "protected" if wins else "naive"


def table(runs: dict[str, Run]) -> list[str]:
    header = f"{'':<28}  {'naive':>10}  {'protected':>10}  {'better':>6}  winner"
    lines = [header, "-" * len(header)]
    for row in ROWS:
        naive, protected = row.measure(runs["naive"]), row.measure(runs["protected"])
        lines.append(
            f"{row.label:<28}  {row.show(naive):>10}  {row.show(protected):>10}  "
            f"{row.better or '-':>6}  {verdict(row, naive, protected)}"
        )
    return lines


def report(runs: dict[str, Run], out: IO[str]) -> int:
    """Print the table and its legend; return how many compared rows the protected side won."""
    print("", file=out)
    for line in table(runs):
        print(line, file=out)
    compared = [row for row in ROWS if row.better is not None]
    won = sum(
        verdict(row, row.measure(runs["naive"]), row.measure(runs["protected"])) == "protected"
        for row in compared
    )
    print(f"\nthe protected side is better on {won} of the {len(compared)} compared rows", file=out)
    print("\nhow to read it:", file=out)
    print(
        "  columns: 'naive' and 'protected' are the two runs (the same clients and load);\n"
        "  'better' says which way is better for the row; 'winner' names the better run",
        file=out,
    )
    for row in ROWS:
        print(f"  {row.label}: {row.meaning}", file=out)
    print(
        "\nCPU used during each run, as a share of one core (none should be near 100%):", file=out
    )
    for mode, run in runs.items():
        shares = ", ".join(f"{name} {percent(share)}" for name, share in run.cpu.items())
        print(f"  {mode:<9} {shares}", file=out)
    return won


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="A retry storm, through a naive gateway and a protected one."
    )
    parser.add_argument("--quick", action="store_true", help="phases half as long (for tests)")
    parser.add_argument(
        "--redis", metavar="URL", help="keep the protected gateway's state in Redis"
    )
    parser.add_argument(
        "--png",
        metavar="PATH",
        default=os.path.join("build", "storm-timeline.png"),
        help="where to write the timeline (default: build/storm-timeline.png)",
    )
    args = parser.parse_args(argv)
    scenario = QUICK if args.quick else FULL
    out = sys.stdout

    print(
        f"resilient storm demo: {scenario.clients} clients ({scenario.posters} placing orders), "
        f"{scenario.rate:g} calls/s in all, each call up to {scenario.attempts} attempts of "
        f"{scenario.attempt_timeout:g}s",
        file=out,
    )
    print(
        "phases: " + ", ".join(f"{name} {seconds:g}s" for name, seconds in scenario.phases),
        file=out,
    )
    print(
        "stores: " + (f"Redis at {args.redis}" if args.redis else "in memory"),
        file=out,
    )
    progress = Progress(out)
    with services(args.redis) as started:
        print(
            "services: upstream "
            + started["upstream"].url
            + ", gateways "
            + ", ".join(f"{mode} {started[mode].url}" for mode in MODES)
            + " (one process each)\n",
            file=out,
        )
        out.flush()
        runs = {mode: run_mode(mode, scenario, started, progress) for mode in MODES}
    report(runs, out)

    try:
        from storm_timeline import plot
    except ImportError as exc:  # matplotlib is missing
        print(f"\nno timeline: {exc} (pip install 'resilient-patterns[demo]')", file=out)
    else:
        path = Path(args.png).resolve()
        plot(runs, path, OUTAGE)
        print(f"\ntimeline written to {path}", file=out)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: the services were stopped", file=sys.stderr)
        sys.exit(130)
