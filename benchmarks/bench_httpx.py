"""The httpx transports' cost on a successful request, against bare httpx.

The upstream is an `httpx.MockTransport` answering 200 at once, so what is measured is the
client's own per-request work (building the request, cookies, reading the response) and what the
resilient transport adds to it. Target: at most 10% of httpx's own per-request cost.

A request costs hundreds of microseconds and the transport's share is a few, well inside the
machine's drift between two timed loops, so the candidates take turns request by request and
the medians are compared (`measure_paired`, and its async twin below).
"""

from __future__ import annotations

from typing import Any

import httpx

import resilient
from resilient import CircuitBreaker
from resilient.integrations.httpx import AsyncResilientTransport, ResilientTransport

from ._harness import Report, compare_paired, compare_paired_async, subtract_baseline

URL = "http://api.test/items/17"
TARGET = 0.10
SAMPLES = 3000


def handler(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b"{}")


def run(report: Report) -> None:
    _sync(report)
    for backend in ("asyncio", "trio"):
        _async(report, backend)


def _check(report: Report, flavour: str, bare: float, mine: float) -> None:
    report.target(
        f"httpx transport ({flavour}): added cost vs the request through bare httpx",
        subtract_baseline(mine, bare),
        bare,
        at_most=TARGET,
        peer="bare httpx request",
        headline=False,
    )


def _sync(report: Report) -> None:
    mock = httpx.MockTransport(handler)
    bare_client = httpx.Client(transport=mock)
    ours = httpx.Client(transport=ResilientTransport(mock))
    breakers = httpx.Client(
        transport=ResilientTransport(mock, breaker_factory=lambda origin: CircuitBreaker(origin))
    )
    deadline = httpx.Client(transport=ResilientTransport(mock, propagate_deadline=True))

    def in_deadline() -> Any:
        with resilient.timeout(30.0):
            return deadline.get(URL)

    def bare_in_deadline() -> Any:
        with resilient.timeout(30.0):
            return bare_client.get(URL)

    rows = {
        "httpx.Client + MockTransport": lambda: bare_client.get(URL),
        "+ ResilientTransport (defaults)": lambda: ours.get(URL),
        "+ ResilientTransport, breaker per origin": lambda: breakers.get(URL),
        "bare client in resilient.timeout(30)": bare_in_deadline,
        "+ ResilientTransport in a deadline, grpc-timeout sent": in_deadline,
    }
    timings = compare_paired(rows, SAMPLES)
    group = "httpx request, success (sync Client)"
    for name, seconds in timings.items():
        report.add(group, name, seconds, baseline=name == "httpx.Client + MockTransport")
    _check(
        report,
        "sync",
        timings["httpx.Client + MockTransport"].median,
        timings["+ ResilientTransport (defaults)"].median,
    )

    request = bare_client.build_request("GET", URL)
    transport = ResilientTransport(mock)
    timings = compare_paired(
        {
            "MockTransport.handle_request": lambda: mock.handle_request(request),
            "ResilientTransport.handle_request": lambda: transport.handle_request(request),
        },
        SAMPLES,
    )
    group = "httpx transport alone (sync handle_request)"
    for name, seconds in timings.items():
        report.add(group, name, seconds, baseline=name.startswith("Mock"))


def _async(report: Report, backend: str) -> None:
    mock = httpx.MockTransport(handler)
    bare_client = httpx.AsyncClient(transport=mock)
    ours = httpx.AsyncClient(transport=AsyncResilientTransport(mock))
    breakers = httpx.AsyncClient(
        transport=AsyncResilientTransport(
            mock, breaker_factory=lambda origin: CircuitBreaker(origin)
        )
    )
    timings = compare_paired_async(
        {
            "httpx.AsyncClient + MockTransport": lambda: bare_client.get(URL),
            "+ AsyncResilientTransport (defaults)": lambda: ours.get(URL),
            "+ AsyncResilientTransport, breaker per origin": lambda: breakers.get(URL),
        },
        backend,
        SAMPLES,
    )
    group = f"httpx request, success (AsyncClient, {backend})"
    for name, seconds in timings.items():
        report.add(group, name, seconds, baseline=name.startswith("httpx."))
    _check(
        report,
        backend,
        timings["httpx.AsyncClient + MockTransport"].median,
        timings["+ AsyncResilientTransport (defaults)"].median,
    )
