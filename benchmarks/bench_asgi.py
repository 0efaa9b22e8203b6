"""ASGI: what `RateLimitMiddleware` adds to a request, against slowapi, in process.

Each row awaits one whole request through a Starlette app (routing, a ``PlainTextResponse``)
called directly as ASGI, with no server and no socket: a prebuilt ``scope``, a ``receive``
that returns the empty body and a ``send`` that drops the messages. The reference row is the
bare app; the others add a rate limit that never refuses (a memory token bucket for
resilient, ``limits``' in-memory fixed window behind ``@limiter.limit`` for slowapi), so each
row's cost over the reference is the limiter's overhead on an allowed request. resilient's
middleware always writes the ``RateLimit-Policy`` and ``RateLimit`` headers; slowapi is
measured as installed by default (no headers) and with ``headers_enabled=True``.

The apps take turns, loop by loop (`compare_async`); each row is the median of its rounds.

Target: the middleware's overhead at most 0.33x slowapi's (default installation).
"""

from __future__ import annotations

from typing import Any

from ._harness import Report, compare_async, subtract_baseline

GROUP = "ASGI request, in process (allowed)"


def _starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/", hello)])


def _slowapi_app(headers: bool) -> Any:
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.util import get_remote_address
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    limiter = Limiter(key_func=get_remote_address, headers_enabled=headers)

    @limiter.limit("1000000000/minute")
    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", hello)])
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]
    return app


def _resilient_app() -> Any:
    from resilient import TokenBucket
    from resilient.integrations.asgi import RateLimitMiddleware, client_address

    app = _starlette_app()
    app.add_middleware(
        RateLimitMiddleware,
        limiter=TokenBucket(rate=1e6, capacity=10**9),
        key=client_address,
    )
    return app


def _request(app: Any) -> Any:
    base = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    body = {"type": "http.request", "body": b"", "more_body": False}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return body

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            statuses.append(message["status"])

    async def one() -> None:
        await app({**base, "state": {}}, receive, send)
        if statuses:
            raise RuntimeError(f"the benchmark app answered {statuses[0]}")

    return one


def _interleaved(apps: dict[str, Any]) -> dict[str, Any]:
    """Seconds per request of each app (`Timing`), the apps taking turns."""
    return compare_async({name: _request(app) for name, app in apps.items()})


def run(report: Report) -> None:
    apps = {"bare": _starlette_app(), "ours": _resilient_app()}
    try:
        apps["slowapi"] = _slowapi_app(headers=False)
        apps["slowapi_headers"] = _slowapi_app(headers=True)
    except ImportError:
        print("  slowapi is not installed (pip install -e '.[bench]'): its rows are skipped")
    times = _interleaved(apps)
    bare = report.add(GROUP, "Starlette app, no limit", times["bare"], reference=True)
    ours = report.add(GROUP, "+ resilient RateLimitMiddleware (MemoryStore)", times["ours"])
    added = subtract_baseline(ours, bare)
    report.limit(
        "RateLimitMiddleware: added cost per request (MemoryStore)",
        added,
        at_most=10e-6,
        headline=False,
        detail=f"over a bare Starlette request of {bare * 1e6:.1f} us",
    )
    if "slowapi" in times:
        slow = report.add(GROUP, "+ slowapi @limiter.limit (memory)", times["slowapi"])
        slow_headers = report.add(
            GROUP, "+ slowapi @limiter.limit, headers_enabled", times["slowapi_headers"]
        )
        theirs = subtract_baseline(slow, bare)
        report.target(
            "RateLimitMiddleware: overhead vs slowapi's (never-refusing limit)",
            added,
            theirs,
            at_most=0.33,
            peer="slowapi",
            detail=f"slowapi with headers: {subtract_baseline(slow_headers, bare) * 1e6:.1f} us",
        )
