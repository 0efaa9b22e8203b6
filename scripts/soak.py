"""Soak test: mixed load on a gateway and an upstream for minutes; memory and Redis keys stay flat.

Three processes on 127.0.0.1, plus a redis-server started for the run:

* an **upstream** service (uvicorn): ``GET /items/{n}`` (a few ms of work, 3 % of answers are
  503, and one 4-second stretch a minute where half of them are), ``POST /orders`` behind
  `IdempotencyMiddleware` on a `RedisStore`, everything behind a per-user `RateLimitMiddleware`
  (a `TokenBucket` on the same `RedisStore`);
* a **gateway** (uvicorn): `DeadlineMiddleware`, a per-user `SlidingWindow` on a `MemoryStore`,
  a `Bulkhead`, then each request forwarded to the upstream through an `AsyncResilientTransport`
  (retries with backoff, a `CircuitBreaker` shared through Redis, the deadline propagated, an
  idempotency key added to POSTs). An order the upstream does not take is parked in a Redis
  `DeadLetterQueue`; every few seconds the gateway replays the queue, as an operator would;
* this process: the load (many users, reads and orders, some orders sent twice with the same
  key), and a sampler that records each server's resident memory (RSS), Redis's key count
  (``DBSIZE``) and memory, and the answers so far.

At the end it checks that RSS and ``DBSIZE`` stayed flat and writes a report in Markdown and
JSON under ``.reliability/soak/`` (git-ignored). **Flat** means: the median of the last quarter
of the samples is at most the median of the second quarter plus a tolerance (RSS: 10 % + 4 MiB;
keys per request per second: 25 % + 0.5). Every key the services write has a TTL, so with
nothing leaking the key count settles at about the request rate times the TTLs; the clients
send as fast as the services answer, so the rate follows the machine's load, and the raw
``DBSIZE`` with it. The key count is therefore judged per unit of request rate (the rate over
the sampling interval before each sample); the raw count is reported beside it. The first
quarter is warm-up (pools, caches, keys reaching their TTL); a fall is fine, only growth fails.
It also fails when the gateway answered any 500 or when most requests failed.

Run ``make soak`` (10 minutes) or ``DURATION=120 python scripts/soak.py``. It stops by itself:
the load ends after DURATION seconds and the servers are killed whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests._redis_server: the same redis-server the tests start

RSS_TOLERANCE = (0.10, 4 * 1024 * 1024)
KEYS_TOLERANCE = (0.25, 0.5)  # keys per (request/s)
IDEMPOTENCY_TTL = 20.0  # seconds: short, so the key count reaches its plateau in the warm-up
USERS = 300


# -- the two services -----------------------------------------------------------------------------


def upstream_app(redis_url: str) -> Any:
    """The upstream ASGI app: flaky reads, idempotent orders, a per-user limit in Redis."""
    import anyio

    from resilient import TokenBucket
    from resilient.integrations.asgi import (
        IdempotencyMiddleware,
        RateLimitMiddleware,
        header_key,
    )
    from resilient.stores import RedisStore

    store = RedisStore.from_url(redis_url, asynchronous=True, socket_timeout=0.5)
    started = time.monotonic()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        bad = (time.monotonic() - started) % 60 < 4  # one bad stretch a minute
        await anyio.sleep(random.uniform(0.0, 0.004))
        if scope["method"] == "POST":
            status, payload = 201, b'{"order": "accepted", "size": %d}' % len(body)
        elif random.random() < (0.5 if bad else 0.03):
            status, payload = 503, b'{"error": "busy"}'
        else:
            status, payload = 200, b'{"item": "%s"}' % scope["path"].encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    limited = RateLimitMiddleware(
        IdempotencyMiddleware(app, store=store, ttl=IDEMPOTENCY_TTL, lock_timeout=10),
        limiter=TokenBucket(rate=40.0, capacity=40, store=store, name="upstream"),
        key=header_key("x-user"),
    )
    return limited


def gateway_app(redis_url: str, upstream: str) -> Any:
    """The gateway ASGI app: deadline, per-user limit in memory, bulkhead, resilient forwarding."""
    import anyio
    import httpx

    from resilient import (
        Backoff,
        Bulkhead,
        CircuitBreaker,
        CircuitOpenError,
        DeadLetterQueue,
        Retry,
        SlidingWindow,
        TimeWindow,
    )
    from resilient.integrations.asgi import (
        BulkheadMiddleware,
        DeadlineMiddleware,
        RateLimitMiddleware,
        header_key,
    )
    from resilient.integrations.httpx import AsyncResilientTransport
    from resilient.stores import MemoryStore, RedisStore

    redis_store = RedisStore.from_url(redis_url, asynchronous=True, socket_timeout=0.5)
    breaker = CircuitBreaker(
        "upstream",
        store=redis_store,
        window=TimeWindow(seconds=10),
        minimum_calls=20,
        failure_rate=0.4,
        open_for=2.0,
    )
    transport = AsyncResilientTransport(
        httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=64)),
        retry=Retry(attempts=3, backoff=Backoff.exponential(initial=0.02, maximum=0.2)),
        breaker=breaker,
        propagate_deadline=True,
        idempotency_keys=True,
    )
    client = httpx.AsyncClient(transport=transport, base_url=upstream, timeout=2.0)
    dlq = DeadLetterQueue("soak-orders", store=redis_store)
    state = {"replayed": 0, "replayer": False}

    @dlq.capture()
    async def place(user: str, key: str, body: str) -> int:
        headers = {"x-user": user, "idempotency-key": f'"{key}"'}
        response = await client.post("/orders", content=body.encode(), headers=headers)
        response.raise_for_status()
        return response.status_code

    async def replay_forever() -> None:
        async def accept(user: str, key: str, body: str) -> None:
            state["replayed"] += 1  # an operator's fix: the order is taken elsewhere

        while True:
            await anyio.sleep(3.0)
            # The store may be busy; the next round takes what is left.
            with contextlib.suppress(Exception):
                await dlq.areplay(handler=accept)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        if not state["replayer"]:
            state["replayer"] = True
            import asyncio

            asyncio.get_running_loop().create_task(replay_forever())
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        user = headers.get(b"x-user", b"").decode()
        try:
            if scope["method"] == "POST":
                key = headers.get(b"x-order", b"").decode() or uuid.uuid4().hex
                status = await place(user, key, body.decode())
                status = 202 if status is None else status  # None: parked for later
            else:
                response = await client.get(scope["path"], headers={"x-user": user})
                status = response.status_code
        except CircuitOpenError:
            status = 503
        except httpx.HTTPError:
            status = 502
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limited = RateLimitMiddleware(
        BulkheadMiddleware(app, bulkhead=Bulkhead(64, max_waiting=64, max_wait=0.5)),
        limiter=SlidingWindow(limit=30, window=1.0, store=MemoryStore(max_keys=10_000)),
        key=header_key("x-user"),
    )
    return DeadlineMiddleware(limited, default=2.0)


def serve(role: str, port: int, redis_url: str, upstream: str) -> None:
    """Run one of the two services on 127.0.0.1:port until killed."""
    import uvicorn

    app = upstream_app(redis_url) if role == "upstream" else gateway_app(redis_url, upstream)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")


# -- the load, the samples, the verdict ----------------------------------------------------------


def rss(pid: int) -> int:
    """Resident memory of a process, in bytes (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait (bounded) until something listens on ``port``."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"a server exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


async def load(
    gateway: str, until: float, answers: Counter[str], workers: int, pause: float
) -> None:
    """``workers`` users' worth of traffic until ``until``: 80 % reads, 20 % orders."""
    import anyio
    import httpx

    async def worker(client: httpx.AsyncClient) -> None:
        while time.monotonic() < until:
            user = f"user-{random.randrange(USERS)}"
            try:
                if random.random() < 0.8:
                    response = await client.get(
                        f"/items/{random.randrange(1000)}", headers={"x-user": user}
                    )
                    answers[f"GET {response.status_code}"] += 1
                else:
                    order = uuid.uuid4().hex
                    headers = {"x-user": user, "x-order": order}
                    for _ in range(2 if random.random() < 0.2 else 1):  # some orders twice
                        response = await client.post(
                            "/orders", content=b'{"n": 1}', headers=headers
                        )
                        answers[f"POST {response.status_code}"] += 1
            except httpx.HTTPError as error:
                answers[f"client {type(error).__name__}"] += 1
            await anyio.sleep(random.uniform(0, 2 * pause))

    limits = httpx.Limits(max_connections=workers)
    async with (
        httpx.AsyncClient(base_url=gateway, timeout=5.0, limits=limits) as client,
        anyio.create_task_group() as group,
    ):
        for _ in range(workers):
            group.start_soon(worker, client)


def keys_per_request_rate(samples: list[dict[str, Any]]) -> list[float]:
    """``DBSIZE`` divided by the request rate of the interval before each sample (from the 2nd)."""
    series = []
    for before, sample in itertools.pairwise(samples):
        elapsed = sample["t"] - before["t"]
        rate = (sample["requests"] - before["requests"]) / elapsed if elapsed > 0 else 0.0
        series.append(sample["dbsize"] / max(rate, 1.0))
    return series


def flat(series: list[float], tolerance: tuple[float, float]) -> dict[str, Any]:
    """Whether the last quarter's median stays within tolerance of the second quarter's."""
    n = len(series)
    if n < 8:
        return {"flat": None, "reason": f"only {n} samples (need 8)"}
    second = statistics.median(series[n // 4 : n // 2])
    last = statistics.median(series[3 * n // 4 :])
    relative, absolute = tolerance
    limit = second * (1 + relative) + absolute
    return {
        "flat": last <= limit,
        "second_quarter_median": second,
        "last_quarter_median": last,
        "limit": limit,
        "growth_percent": round(100 * (last - second) / second, 2) if second else None,
    }


def report(out: Path, result: dict[str, Any]) -> None:
    """Write ``report.json`` and ``report.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    mib = 1024 * 1024
    lines = [
        "# Soak report",
        "",
        f"- finished: {result['finished']}; duration {result['duration_s']} s, "
        f"{len(result['samples'])} samples every {result['sample_s']} s",
        f"- requests: {result['requests']} ({result['requests_per_s']}/s); answers: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(result["answers"].items())),
        f"- verdict: **{'PASS' if result['passed'] else 'FAIL'}**"
        + (f" ({'; '.join(result['problems'])})" if result["problems"] else ""),
        "",
        "| series | 2nd-quarter median | last-quarter median | limit | growth | flat |",
        "|---|---|---|---|---|---|",
    ]
    for name, verdict in result["flatness"].items():
        scale = mib if name.startswith("rss") else 1
        unit = " MiB" if scale == mib else ""
        if verdict["flat"] is None:
            lines.append(f"| {name} | | | | | {verdict['reason']} |")
            continue
        lines.append(
            f"| {name} | {verdict['second_quarter_median'] / scale:.1f}{unit} "
            f"| {verdict['last_quarter_median'] / scale:.1f}{unit} "
            f"| {verdict['limit'] / scale:.1f}{unit} | {verdict['growth_percent']} % "
            f"| {'yes' if verdict['flat'] else 'NO'} |"
        )
    lines += [
        "",
        "| t (s) | upstream RSS (MiB) | gateway RSS (MiB) | DBSIZE | Redis memory (MiB) "
        "| requests |",
        "|---|---|---|---|---|---|",
    ]
    for s in result["samples"]:
        lines.append(
            f"| {s['t']:.0f} | {s['rss_upstream'] / mib:.1f} | {s['rss_gateway'] / mib:.1f} "
            f"| {s['dbsize']} | {s['redis_memory'] / mib:.2f} | {s['requests']} |"
        )
    (out / "report.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    """Run the soak (or, with the hidden ``--serve``, one of its services)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--duration", type=float, default=float(os.environ.get("DURATION", "600")), help="seconds"
    )
    parser.add_argument("--workers", type=int, default=24)
    parser.add_argument("--pause", type=float, default=0.05, help="mean pause between requests")
    parser.add_argument("--out", type=Path, default=ROOT / ".reliability" / "soak")
    parser.add_argument("--serve", choices=("upstream", "gateway"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.redis, args.upstream)
        return 0
    if not 0 < args.duration <= 24 * 3600:
        parser.error("--duration (DURATION) must be in (0, 86400] seconds")

    import anyio
    import redis
    from tests._redis_server import RedisServer, find_redis_server, free_port

    binary = find_redis_server()
    if binary is None:
        print("redis-server is not installed (make redis)", file=sys.stderr)
        return 2
    sample_s = min(15.0, max(1.0, args.duration / 40))
    answers: Counter[str] = Counter()
    samples: list[dict[str, Any]] = []
    processes: list[subprocess.Popen[bytes]] = []
    server = RedisServer(binary)
    server.start()
    try:
        control = redis.Redis.from_url(server.url, socket_timeout=5.0)
        ports = {"upstream": free_port(), "gateway": free_port()}
        for role in ("upstream", "gateway"):
            command = [sys.executable, __file__, "--serve", role, "--port", str(ports[role])]
            command += [
                "--redis",
                server.url,
                "--upstream",
                f"http://127.0.0.1:{ports['upstream']}",
            ]
            processes.append(subprocess.Popen(command, stdin=subprocess.DEVNULL))
            wait_listening(ports[role], processes[-1])
        upstream, gateway = processes
        started = time.monotonic()
        until = started + args.duration
        print(f"soak: {args.duration:.0f} s of load, a sample every {sample_s:.1f} s", flush=True)

        async def run() -> None:
            async def sampler() -> None:
                while True:
                    now = time.monotonic()
                    sample = {
                        "t": round(now - started, 1),
                        "rss_upstream": rss(upstream.pid),
                        "rss_gateway": rss(gateway.pid),
                        "dbsize": int(control.dbsize()),
                        "redis_memory": int(control.info("memory")["used_memory"]),
                        "requests": sum(answers.values()),
                    }
                    samples.append(sample)
                    print(
                        f"  t={sample['t']:6.0f}s rss up={sample['rss_upstream'] >> 20} MiB "
                        f"gw={sample['rss_gateway'] >> 20} MiB dbsize={sample['dbsize']} "
                        f"requests={sample['requests']}",
                        flush=True,
                    )
                    if now >= until:
                        return
                    await anyio.sleep(min(sample_s, max(0.0, until - now)))

            gateway_url = f"http://127.0.0.1:{ports['gateway']}"
            with anyio.fail_after(args.duration + 120):  # bounded, whatever happens
                async with anyio.create_task_group() as group:
                    group.start_soon(sampler)
                    await load(gateway_url, until, answers, args.workers, args.pause)

        anyio.run(run)
        duration = time.monotonic() - started
        for process in processes:
            if process.poll() is not None:
                answers[f"server exited {process.returncode}"] += 1
        control.close()
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
        server.close()

    requests = sum(v for k, v in answers.items() if not k.startswith("server"))
    flatness = {
        "rss_upstream": flat([s["rss_upstream"] for s in samples], RSS_TOLERANCE),
        "rss_gateway": flat([s["rss_gateway"] for s in samples], RSS_TOLERANCE),
        "dbsize_per_request_rate": flat(keys_per_request_rate(samples), KEYS_TOLERANCE),
    }
    problems = [f"{name} grew" for name, v in flatness.items() if v["flat"] is False]
    # The raw key count follows the request rate (see the module docstring): reported, not judged.
    flatness["dbsize (raw, not judged)"] = flat([s["dbsize"] for s in samples], (0.25, 50))
    served = sum(v for k, v in answers.items() if k.split()[-1] in {"200", "201", "202", "429"})
    if any(k.endswith(" 500") for k in answers):
        problems.append("the gateway answered 500")
    if any(k.startswith("server exited") for k in answers):
        problems.append("a server exited")
    if requests == 0 or served < requests / 2:
        problems.append(f"only {served} of {requests} requests were served")
    result = {
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration_s": round(duration, 1),
        "sample_s": sample_s,
        "workers": args.workers,
        "requests": requests,
        "requests_per_s": round(requests / duration, 1) if duration else 0,
        "answers": dict(answers),
        "flatness": flatness,
        "passed": not problems,
        "problems": problems,
        "samples": samples,
    }
    report(args.out, result)
    print((args.out / "report.md").read_text())
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
