"""resilient.integrations.fastapi.RateLimit: a dependency on a route or a router."""

from __future__ import annotations

from typing import Any

import http_sf
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import PlainTextResponse

from resilient import ResilientError, SlidingWindow, TokenBucket
from resilient.integrations.asgi import client_address, exception_handler, header_key
from resilient.integrations.fastapi import RateLimit, RateLimitExceeded
from resilient.testing import FakeClock

from ._asgi import client


def build(limit: RateLimit, *, handler: bool) -> FastAPI:
    app = FastAPI()
    if handler:
        app.add_exception_handler(ResilientError, exception_handler)

    @app.get("/limited", dependencies=[Depends(limit)])
    async def limited() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/own", dependencies=[Depends(limit)])
    async def own() -> PlainTextResponse:
        return PlainTextResponse("mine")

    @app.get("/free")
    async def free() -> dict[str, str]:
        return {"ok": "free"}

    return app


@pytest.mark.parametrize("handler", [True, False])
async def test_a_route_dependency_refuses_with_429_and_the_headers(handler: bool) -> None:
    clock = FakeClock()
    limit = RateLimit(TokenBucket(rate=2 / 60, capacity=2, clock=clock), key=client_address)
    app = build(limit, handler=handler)
    async with client(app) as http:
        first = await http.get("/limited")
        second = await http.get("/limited")
        refused = await http.get("/limited")
        free = await http.get("/free")
        clock.advance(int(refused.headers["retry-after"]))
        admitted = await http.get("/limited")
    assert first.status_code == second.status_code == 200
    assert first.json() == {"ok": "yes"}
    assert first.headers["ratelimit-policy"] == '"token_bucket";q=2;w=60'
    assert first.headers["ratelimit"] == '"token_bucket";r=1;t=30'
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"
    assert http_sf.parse(refused.headers["ratelimit"].encode(), tltype="list") == [
        ("token_bucket", {"r": 0, "t": 60})
    ]
    assert http_sf.parse(refused.headers["ratelimit-policy"].encode(), tltype="list") == [
        ("token_bucket", {"q": 2, "w": 60})
    ]
    if handler:
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["violated-policies"] == ["token_bucket"]
    else:
        assert "detail" in refused.json()
    assert free.status_code == 200
    assert "ratelimit" not in free.headers
    assert admitted.status_code == 200


async def test_an_endpoint_returning_its_own_response_loses_the_headers_but_is_limited() -> None:
    limit = RateLimit(TokenBucket(rate=1.0, capacity=1, clock=FakeClock()), key=client_address)
    async with client(build(limit, handler=True)) as http:
        own = await http.get("/own")
        refused = await http.get("/own")
    assert own.text == "mine"
    assert "ratelimit" not in own.headers  # documented: FastAPI drops them
    assert refused.status_code == 429


async def test_a_router_dependency_limits_every_route_of_the_router() -> None:
    limit = RateLimit(
        SlidingWindow(limit=2, window=10.0, clock=FakeClock()),
        key=header_key("x-api-key"),
        policy_name="per-key",
    )
    router = APIRouter(dependencies=[Depends(limit)])

    @router.get("/a")
    async def a() -> dict[str, str]:
        return {}

    @router.get("/b")
    async def b() -> dict[str, str]:
        return {}

    app = FastAPI()
    app.include_router(router)
    async with client(app) as http:
        key = {"x-api-key": "k1"}
        assert (await http.get("/a", headers=key)).headers["ratelimit"] == '"per-key";r=1;t=20'
        assert (await http.get("/b", headers=key)).status_code == 200
        assert (await http.get("/a", headers=key)).status_code == 429
        assert (await http.get("/a", headers={"x-api-key": "k2"})).status_code == 200
        assert (await http.get("/a")).status_code == 200  # no key: exempt


def test_the_refusal_is_a_rate_limited_error_and_an_http_exception() -> None:
    from fastapi import HTTPException

    from resilient import RateLimitedError

    assert issubclass(RateLimitExceeded, RateLimitedError)
    assert issubclass(RateLimitExceeded, HTTPException)


def test_the_constructor_rejects_bad_options_naming_them() -> None:
    limiter = TokenBucket(rate=1.0, capacity=3)
    with pytest.raises(TypeError, match="limiter"):
        RateLimit("5/minute", key=client_address)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key"):
        RateLimit(limiter, key=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cost"):
        RateLimit(limiter, key=client_address, cost=4)
    with pytest.raises(ValueError, match="policy_name"):
        RateLimit(TokenBucket(rate=1.0, capacity=3, name="caf\u00e9"), key=client_address)
    with pytest.raises(TypeError):
        RateLimit(limiter)  # type: ignore[call-arg]
    assert "RateLimit(" in repr(RateLimit(limiter, key=client_address))


def test_it_is_as_short_as_slowapi() -> None:
    # slowapi: @limiter.limit("5/minute") plus a `request: Request` parameter on the endpoint.
    app = FastAPI()

    @app.get(
        "/",
        dependencies=[Depends(RateLimit(TokenBucket(rate=5 / 60, capacity=5), key=client_address))],
    )
    async def home() -> dict[str, Any]:
        return {}

    assert app.routes
