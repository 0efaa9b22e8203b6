"""DeadlineMiddleware: the three header formats, caps and defaults, 504s and cancellation."""

from __future__ import annotations

import math
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resilient
from resilient.integrations._timeout_header import format_grpc_timeout, parse_grpc_timeout
from resilient.integrations.asgi import DeadlineMiddleware
from resilient.testing import FakeClock

from ._asgi import client, ok_app, run_lifespan, run_websocket
from ._uvicorn import serve


def reporting_app(seen: list[float | None]) -> Any:
    """An app that records `resilient.remaining()` as it starts, and answers 200."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(resilient.remaining())
        await ok_app(scope, receive, send)

    return app


async def remaining_seen(sent: dict[str, Any], **options: Any) -> tuple[int, float | None]:
    seen: list[float | None] = []
    app = DeadlineMiddleware(reporting_app(seen), clock=FakeClock(), **options)
    async with client(app) as http:
        response = await http.get("/", headers=sent)
    return response.status_code, (seen[0] if seen else math.nan)


@pytest.mark.parametrize(
    ("header", "value", "seconds"),
    [
        ("grpc-timeout", "1S", 1.0),
        ("grpc-timeout", "487m", 0.487),
        ("grpc-timeout", "2M", 120.0),
        ("grpc-timeout", "1H", 3600.0),
        ("grpc-timeout", "250000u", 0.25),
        ("grpc-timeout", "99999999n", 0.099999999),
        ("x-envoy-expected-rq-timeout-ms", "15000", 15.0),
        ("x-envoy-expected-rq-timeout-ms", "1", 0.001),
        ("x-request-timeout", "2", 2.0),
        ("x-request-timeout", "0.25", 0.25),
        ("x-request-timeout", "1.000000001", 1.000000001),
    ],
)
async def test_each_header_format_is_read_exactly(header: str, value: str, seconds: float) -> None:
    status, left = await remaining_seen({header: value})
    assert status == 200
    assert left == pytest.approx(seconds, abs=1e-12)


async def test_the_first_header_present_in_the_configured_order_wins() -> None:
    both = {
        "grpc-timeout": "3S",
        "x-request-timeout": "5",
        "x-envoy-expected-rq-timeout-ms": "7000",
    }
    assert (await remaining_seen(both))[1] == 3.0
    reordered = ("x-request-timeout", "grpc-timeout")
    assert (await remaining_seen(both, headers=reordered))[1] == 5.0
    assert (await remaining_seen(both, headers=("X-Envoy-Expected-Rq-Timeout-Ms",)))[1] == 7.0


@pytest.mark.parametrize(
    "value", ["", "1", "S", "123456789S", "1.5S", "-1S", "1s", " 1S", "1S ", "1x", "1S, 2S"]
)
async def test_a_malformed_value_is_ignored_as_if_absent(value: str) -> None:
    status, left = await remaining_seen({"grpc-timeout": value, "x-request-timeout": "4"})
    assert (status, left) == (200, 4.0)
    status, left = await remaining_seen({"grpc-timeout": value}, default=9.0)
    assert (status, left) == (200, 9.0)
    status, left = await remaining_seen({"grpc-timeout": value})
    assert (status, left) == (200, None)


@pytest.mark.parametrize(
    "value",
    ["", "-5", "1.5", "1e3", "0x10", "1_000", "\uff11\uff12".encode(), "1" * 16, " 5", "5,6"],
)
async def test_malformed_envoy_milliseconds_are_ignored(value: Any) -> None:
    headers = {"x-envoy-expected-rq-timeout-ms": value}
    assert await remaining_seen(headers, default=3.0) == (200, 3.0)


@pytest.mark.parametrize("value", ["", "-1", "1e3", "inf", "nan", ".5", "5.", "1.1234567890", "+2"])
async def test_malformed_decimal_seconds_are_ignored(value: str) -> None:
    assert await remaining_seen({"x-request-timeout": value}, default=3.0) == (200, 3.0)


async def test_maximum_caps_the_callers_time_and_the_default() -> None:
    assert (await remaining_seen({"grpc-timeout": "1H"}, maximum=30.0))[1] == 30.0
    assert (await remaining_seen({"grpc-timeout": "1S"}, maximum=30.0))[1] == 1.0
    assert (await remaining_seen({}, default=60.0, maximum=30.0))[1] == 30.0
    assert (await remaining_seen({}, default=5.0))[1] == 5.0
    assert (await remaining_seen({}))[1] is None


@pytest.mark.parametrize(
    "headers",
    [{"grpc-timeout": "0m"}, {"x-envoy-expected-rq-timeout-ms": "0"}, {"x-request-timeout": "0"}],
)
async def test_an_expired_deadline_is_answered_504_without_calling_the_app(
    headers: dict[str, str],
) -> None:
    seen: list[float | None] = []
    app = DeadlineMiddleware(reporting_app(seen))
    async with client(app) as http:
        response = await http.get("/", headers=headers)
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 504
    assert seen == []


async def test_the_app_is_cancelled_when_the_deadline_passes_and_504_is_sent() -> None:
    events: list[str] = []

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        events.append("started")
        try:
            await anyio.sleep(30)
            events.append("finished")
        finally:
            events.append("unwound")

    async with client(DeadlineMiddleware(slow)) as http:
        response = await http.get("/", headers={"grpc-timeout": "50m"})
    assert response.status_code == 504
    assert events == ["started", "unwound"]


async def test_the_app_is_cancelled_at_a_fake_clocks_deadline() -> None:
    clock = FakeClock()

    async def ticking(scope: Any, receive: Any, send: Any) -> None:
        for _ in range(1000):  # bounded: the deadline passes after 10 ticks
            clock.advance(0.1)
            await anyio.sleep(0)
        await ok_app(scope, receive, send)

    async with client(DeadlineMiddleware(ticking, clock=clock)) as http:
        response = await http.get("/", headers={"x-request-timeout": "1"})
    assert response.status_code == 504
    assert clock.monotonic() < 2.0


async def test_after_the_response_started_the_deadline_raises_so_the_server_drops_it() -> None:
    async def streaming(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await anyio.sleep(30)

    async with client(DeadlineMiddleware(streaming)) as http:
        with pytest.raises(resilient.DeadlineExceeded):
            await http.get("/", headers={"grpc-timeout": "50m"})


async def test_the_apps_own_deadline_exceeded_before_the_request_deadline_propagates() -> None:
    async def impatient(scope: Any, receive: Any, send: Any) -> None:
        async with resilient.timeout(0.0):
            pass

    async with client(DeadlineMiddleware(impatient)) as http:
        with pytest.raises(resilient.DeadlineExceeded):
            await http.get("/", headers={"x-request-timeout": "60"})


async def test_the_apps_own_deadline_exceeded_after_the_request_deadline_is_a_504() -> None:
    clock = FakeClock()

    async def overran(scope: Any, receive: Any, send: Any) -> None:
        clock.advance(2.0)  # the request's second has gone by
        raise resilient.DeadlineExceeded(timeout=1.0)

    async with client(DeadlineMiddleware(overran, clock=clock)) as http:
        response = await http.get("/", headers={"grpc-timeout": "1S"})
    assert response.status_code == 504


async def test_the_deadline_is_reset_after_the_request() -> None:
    app = DeadlineMiddleware(ok_app)
    async with client(app) as http:
        await http.get("/", headers={"grpc-timeout": "5S"})
    assert resilient.remaining() is None


async def test_lifespan_and_websocket_scopes_pass_through() -> None:
    app = DeadlineMiddleware(ok_app, default=0.001)
    assert await run_lifespan(app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    sent = await run_websocket(app)
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]


async def test_starlette_sync_and_async_endpoints_see_the_deadline() -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    def sync_endpoint(request: Any) -> JSONResponse:
        return JSONResponse({"remaining": resilient.remaining()})

    async def async_endpoint(request: Any) -> JSONResponse:
        return JSONResponse({"remaining": resilient.remaining()})

    app = Starlette(routes=[Route("/sync", sync_endpoint), Route("/async", async_endpoint)])
    app.add_middleware(DeadlineMiddleware, maximum=100.0)
    async with client(app) as http:
        for path in ("/sync", "/async"):
            left = (await http.get(path, headers={"grpc-timeout": "20S"})).json()["remaining"]
            assert 0 < left <= 20
            assert (await http.get(path)).json()["remaining"] is None


async def test_fastapi_endpoints_see_the_deadline() -> None:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/")
    def endpoint() -> dict[str, float | None]:
        return {"remaining": resilient.remaining()}

    app.add_middleware(DeadlineMiddleware, default=8.0)
    async with client(app) as http:
        left = (await http.get("/")).json()["remaining"]
    assert 0 < left <= 8


def test_the_constructor_rejects_bad_options_naming_them() -> None:
    with pytest.raises(TypeError, match="app"):
        DeadlineMiddleware(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="headers"):
        DeadlineMiddleware(ok_app, headers="grpc-timeout")
    with pytest.raises(ValueError, match="x-deadline"):
        DeadlineMiddleware(ok_app, headers=("grpc-timeout", "x-deadline"))
    with pytest.raises(TypeError, match="headers"):
        DeadlineMiddleware(ok_app, headers=(b"grpc-timeout",))  # type: ignore[arg-type]
    for argument in ("default", "maximum"):
        for bad in (0, -1, math.inf, math.nan):
            with pytest.raises(ValueError, match=argument):
                DeadlineMiddleware(ok_app, **{argument: bad})
        with pytest.raises(TypeError, match=argument):
            DeadlineMiddleware(ok_app, **{argument: "5s"})
    with pytest.raises(TypeError, match="clock"):
        DeadlineMiddleware(ok_app, clock=object())  # type: ignore[arg-type]


@given(st.floats(0.0, 1e12, allow_nan=False))
def test_grpc_timeout_round_trips(seconds: float) -> None:
    written = format_grpc_timeout(seconds)
    read = parse_grpc_timeout(written)
    assert read is not None
    assert read <= seconds + 1e-9  # never more time than was left
    assert format_grpc_timeout(read) == written  # a value read is written back unchanged
    if seconds < 99_999.999:
        assert seconds - read < 0.001 + 1e-9  # millisecond precision


@given(st.integers(0, 99_999_999), st.sampled_from("HMSmun"))
def test_every_grpc_timeout_value_is_read_as_its_seconds(value: int, unit: str) -> None:
    size = {"H": 3600, "M": 60, "S": 1, "m": 1e-3, "u": 1e-6, "n": 1e-9}[unit]
    assert parse_grpc_timeout(f"{value}{unit}") == value * size
    assert parse_grpc_timeout(f"{value}{unit}".encode()) == value * size


HEADER_NAMES = ("grpc-timeout", "x-envoy-expected-rq-timeout-ms", "x-request-timeout")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(HEADER_NAMES),
            st.binary(max_size=20).filter(lambda b: b"\r" not in b and b"\n" not in b),
        ),
        max_size=4,
    )
)
def test_no_header_value_makes_the_middleware_fail(headers: list[tuple[str, bytes]]) -> None:
    clock = FakeClock()
    seen: list[float | None] = []
    app = DeadlineMiddleware(reporting_app(seen), clock=clock, maximum=1e6)
    received: list[dict[str, Any]] = []

    async def main() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "path": "/",
            "raw_path": b"/",
            "query_string": b"",
            "headers": [(name.encode(), value) for name, value in headers],
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            received.append(message)

        await app(scope, receive, send)

    anyio.run(main)
    status = received[0]["status"]
    assert status in (200, 504)
    if status == 200:
        assert seen
        assert seen[0] is None or 0 < seen[0] <= 1e6
    else:
        assert seen == []


def test_end_to_end_under_uvicorn() -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def left(request: Any) -> JSONResponse:
        return JSONResponse({"remaining": resilient.remaining()})

    async def slow(request: Any) -> JSONResponse:
        await anyio.sleep(30)
        return JSONResponse({})

    app = Starlette(routes=[Route("/left", left), Route("/slow", slow)])
    app.add_middleware(DeadlineMiddleware, maximum=60.0)
    with serve(app) as url, httpx.Client(base_url=url, timeout=20.0) as http:
        remaining = http.get("/left", headers={"grpc-timeout": "500m"}).json()["remaining"]
        assert 0 < remaining <= 0.5
        assert http.get("/left", headers={"grpc-timeout": "0m"}).status_code == 504
        response = http.get("/slow", headers={"x-envoy-expected-rq-timeout-ms": "100"})
        assert response.status_code == 504
        assert response.headers["content-type"] == "application/problem+json"
