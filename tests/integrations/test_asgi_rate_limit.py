"""RateLimitMiddleware: 429s, the IETF RateLimit headers, keys, pass-through and validation."""

from __future__ import annotations

import json
import math
from typing import Any

import anyio
import http_sf
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient import SlidingWindow, StoreUnavailable, TokenBucket
from resilient.integrations.asgi import RateLimitMiddleware, client_address, header_key
from resilient.testing import FakeClock

from ._asgi import client, ok_app, run_lifespan, run_websocket

QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"


def limited(limiter: Any, **options: Any) -> RateLimitMiddleware:
    options.setdefault("key", client_address)
    return RateLimitMiddleware(ok_app, limiter=limiter, **options)


async def test_requests_over_the_limit_get_429_with_retry_after_and_a_problem_document() -> None:
    clock = FakeClock()
    app = limited(TokenBucket(rate=1.0, capacity=2, clock=clock))
    async with client(app) as http:
        assert (await http.get("/")).status_code == 200
        assert (await http.get("/")).status_code == 200
        refused = await http.get("/")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["ratelimit-policy"] == '"default";q=2;w=2'
    assert refused.headers["ratelimit"] == '"default";r=0;t=2'
    problem = refused.json()
    assert problem["type"] == QUOTA_EXCEEDED
    assert problem["status"] == 429
    assert problem["title"] == "Too Many Requests"
    assert problem["violated-policies"] == ["default"]
    assert int(refused.headers["content-length"]) == len(refused.content)


async def test_allowed_responses_carry_the_ratelimit_headers_with_the_designed_meanings() -> None:
    clock = FakeClock()
    # q = capacity, w = ceil(capacity / rate) = 60, r = what is left, t = seconds to full.
    app = limited(TokenBucket(rate=100 / 60, capacity=100, clock=clock), policy_name="api")
    async with client(app) as http:
        first = await http.get("/")
        clock.advance(0.1)
        second = await http.get("/")
    assert first.status_code == 200
    assert first.text == "ok"
    assert first.headers["ratelimit-policy"] == '"api";q=100;w=60'
    assert first.headers["ratelimit"] == '"api";r=99;t=1'
    assert second.headers["ratelimit"] == '"api";r=98;t=2'
    assert "x-ratelimit-limit" not in first.headers


async def test_a_sliding_window_policy_names_its_window_and_limit() -> None:
    clock = FakeClock()
    app = limited(SlidingWindow(limit=10, window=2.5, clock=clock))
    async with client(app) as http:
        response = await http.get("/")
    assert response.headers["ratelimit-policy"] == '"default";q=10;w=3'
    assert http_sf.parse(response.headers["ratelimit"].encode(), tltype="list")[0][1]["r"] == 9


@pytest.mark.parametrize("limiter_kind", ["token_bucket", "sliding_window"])
async def test_a_client_honouring_retry_after_or_ratelimit_is_admitted_next_time(
    limiter_kind: str,
) -> None:
    clock = FakeClock()
    if limiter_kind == "token_bucket":
        limiter: Any = TokenBucket(rate=0.3, capacity=3, clock=clock)
    else:
        limiter = SlidingWindow(limit=3, window=7.0, clock=clock)
    app = limited(limiter, cost=2)
    async with client(app) as http:
        for _ in range(20):
            response = await http.get("/")
            if response.status_code == 200:
                continue
            assert response.status_code == 429
            retry_after = int(response.headers["retry-after"])
            [(name, params)] = http_sf.parse(response.headers["ratelimit"].encode(), tltype="list")
            assert name == "default"
            assert params["r"] < 2  # not enough left for this cost
            clock.advance(retry_after)
            assert (await http.get("/")).status_code == 200
            # Spend it again, then honour RateLimit's t: back to full, so admitted again.
            refused = await http.get("/")
            assert refused.status_code == 429
            [(_, params)] = http_sf.parse(refused.headers["ratelimit"].encode(), tltype="list")
            clock.advance(params["t"])
            assert (await http.get("/")).status_code == 200
            clock.advance(100)


async def test_a_key_of_none_exempts_the_request_and_adds_no_headers() -> None:
    app = limited(TokenBucket(rate=1.0, capacity=1, clock=FakeClock()), key=header_key("x-api-key"))
    async with client(app) as http:
        for _ in range(5):
            response = await http.get("/")
            assert response.status_code == 200
            assert "ratelimit" not in response.headers
        assert (await http.get("/", headers={"X-API-Key": "a"})).status_code == 200
        assert (await http.get("/", headers={"X-API-Key": "a"})).status_code == 429
        assert (await http.get("/", headers={"X-API-Key": "b"})).status_code == 200


async def test_legacy_headers_are_opt_in_and_the_apps_own_values_win() -> None:
    async def app_with_own(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"X-RateLimit-Limit", b"7")],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    clock = FakeClock()
    limiter = TokenBucket(rate=1.0, capacity=5, clock=clock)
    app = RateLimitMiddleware(
        app_with_own, limiter=limiter, key=client_address, legacy_headers=True
    )
    async with client(app) as http:
        response = await http.get("/")
    assert response.headers.get_list("x-ratelimit-limit") == ["7"]
    assert response.headers["x-ratelimit-remaining"] == "4"
    assert response.headers["x-ratelimit-reset"] == "1"
    async with client(limited(limiter, legacy_headers=True)) as http:
        response = await http.get("/")
    assert response.headers["x-ratelimit-limit"] == "5"
    assert response.headers["x-ratelimit-remaining"] == "3"


async def test_the_apps_header_list_is_not_mutated() -> None:
    shared = [(b"content-type", b"text/plain")]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": shared})
        await send({"type": "http.response.body", "body": b""})

    limiter = TokenBucket(rate=1.0, capacity=5, clock=FakeClock())
    async with client(RateLimitMiddleware(app, limiter=limiter, key=client_address)) as http:
        await http.get("/")
        await http.get("/")
    assert shared == [(b"content-type", b"text/plain")]


async def test_lifespan_and_websocket_scopes_pass_through_uncharged() -> None:
    limiter = TokenBucket(rate=1.0, capacity=1, clock=FakeClock())
    app = limited(limiter)
    assert await run_lifespan(app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    for _ in range(3):
        sent = await run_websocket(app)
        assert [m["type"] for m in sent] == [
            "websocket.accept",
            "websocket.send",
            "websocket.close",
        ]
    assert limiter.try_acquire("127.0.0.1").allowed


async def test_store_failure_follows_on_error(anyio_backend: str) -> None:
    from resilient.stores import RedisStore

    from .._redis_server import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    for on_error, status in (("allow", 200), ("deny", 429)):
        store = RedisStore.from_url(
            dead, socket_timeout=0.3, on_error=on_error, error_retry_after=2.5
        )
        app = limited(TokenBucket(rate=1.0, capacity=1, store=store))
        async with client(app) as http:
            response = await http.get("/")
        assert response.status_code == status
        if status == 429:
            assert response.headers["retry-after"] == "3"
    store = RedisStore.from_url(dead, socket_timeout=0.3, on_error="raise")
    app = limited(TokenBucket(rate=1.0, capacity=1, store=store))
    async with client(app) as http:
        with pytest.raises(StoreUnavailable):
            await http.get("/")


def test_the_constructor_rejects_bad_options_naming_them() -> None:
    limiter = TokenBucket(rate=1.0, capacity=5)
    with pytest.raises(TypeError, match="app"):
        RateLimitMiddleware(None, limiter=limiter, key=client_address)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="limiter"):
        RateLimitMiddleware(ok_app, limiter="5/minute", key=client_address)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key"):
        RateLimitMiddleware(ok_app, limiter=limiter, key="ip")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RateLimitMiddleware(ok_app, limiter=limiter)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="cost"):
        RateLimitMiddleware(ok_app, limiter=limiter, key=client_address, cost=6)
    with pytest.raises(TypeError, match="cost"):
        RateLimitMiddleware(ok_app, limiter=limiter, key=client_address, cost=1.5)  # type: ignore[arg-type]
    for bad in ("", "caf\u00e9", "a\nb"):
        with pytest.raises(ValueError, match="policy_name"):
            RateLimitMiddleware(ok_app, limiter=limiter, key=client_address, policy_name=bad)
    with pytest.raises(TypeError, match="legacy_headers"):
        RateLimitMiddleware(ok_app, limiter=limiter, key=client_address, legacy_headers=1)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    name=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1),
    capacity=st.integers(1, 10_000),
    rate=st.floats(0.001, 1000.0),
    requests=st.integers(1, 6),
    elapsed=st.floats(0.0, 5.0),
    legacy=st.booleans(),
)
def test_every_ratelimit_header_written_parses_with_an_independent_parser(
    name: str, capacity: int, rate: float, requests: int, elapsed: float, legacy: bool
) -> None:
    clock = FakeClock()
    limiter = TokenBucket(rate=rate, capacity=capacity, clock=clock)
    app = limited(limiter, policy_name=name, legacy_headers=legacy)

    async def main() -> list[httpx.Response]:
        out = []
        async with client(app) as http:
            for _ in range(requests):
                out.append(await http.get("/"))
                clock.advance(elapsed)
        return out

    for response in anyio.run(main):
        [(policy, policy_params)] = http_sf.parse(
            response.headers["ratelimit-policy"].encode(), tltype="list"
        )
        [(item, params)] = http_sf.parse(response.headers["ratelimit"].encode(), tltype="list")
        assert policy == item == name
        assert policy_params["q"] == capacity
        assert policy_params["w"] >= 1
        assert policy_params["w"] == math.ceil(round(capacity * round(1e6 / rate)) / 1e6)
        assert 0 <= params["r"] <= capacity
        assert params["t"] >= 0
        if response.status_code == 429:
            assert json.loads(response.content)["violated-policies"] == [name]
            assert int(response.headers["retry-after"]) >= 1


async def test_starlette_and_fastapi_add_middleware() -> None:
    from fastapi import FastAPI
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello", headers={"RateLimit": '"inner";r=1'})

    starlette_app = Starlette(routes=[Route("/", hello)])
    fastapi_app = FastAPI()

    @fastapi_app.get("/")
    async def fastapi_hello() -> PlainTextResponse:
        return PlainTextResponse("hello", headers={"RateLimit": '"inner";r=1'})

    for app in (starlette_app, fastapi_app):
        limiter = TokenBucket(rate=1.0, capacity=2, clock=FakeClock())
        app.add_middleware(RateLimitMiddleware, limiter=limiter, key=client_address)
        async with client(app) as http:
            first = await http.get("/")
            await http.get("/")
            refused = await http.get("/")
        assert first.text == "hello"
        # The app's own RateLimit field line and ours parse as one list.
        joined = ", ".join(first.headers.get_list("ratelimit")).encode()
        assert http_sf.parse(joined, tltype="list") == [
            ("inner", {"r": 1}),
            ("default", {"r": 1, "t": 1}),
        ]
        assert refused.status_code == 429
