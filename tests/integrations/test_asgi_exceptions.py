"""exception_handler: resilient's errors raised in routes become problem+json answers."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import http_sf
import pytest

from resilient import (
    Bulkhead,
    BulkheadFullError,
    CircuitOpenError,
    DeadlineExceeded,
    ResilientError,
    RetryBudgetExhausted,
    TokenBucket,
)
from resilient.integrations.asgi import exception_handler
from resilient.testing import FakeClock

from ._asgi import client, run_websocket


def starlette_app(exc: BaseException) -> Any:
    from starlette.applications import Starlette
    from starlette.routing import Route, WebSocketRoute

    async def fail(request: Any) -> Any:
        raise exc

    async def fail_ws(websocket: Any) -> None:
        await websocket.accept()
        raise exc

    app = Starlette(routes=[Route("/", fail), WebSocketRoute("/ws", fail_ws)])
    app.add_exception_handler(ResilientError, exception_handler)
    return app


def refused_by_limiter() -> BaseException:
    limiter = TokenBucket(rate=0.5, capacity=3, name="search", clock=FakeClock())
    limiter.try_acquire("k", cost=3)
    try:
        limiter.acquire("k", max_wait=0)
    except ResilientError as error:
        return error
    raise AssertionError("not refused")


@pytest.mark.parametrize(
    ("exc", "status", "retry_after"),
    [
        (BulkheadFullError("pool", 0.0), 503, "1"),
        (CircuitOpenError("payments", 12.2), 503, "13"),
        (DeadlineExceeded(timeout=1.0), 504, None),
        (RetryBudgetExhausted("spent"), 500, None),
    ],
)
async def test_each_error_gets_its_status_and_a_problem_document(
    exc: BaseException, status: int, retry_after: str | None
) -> None:
    async with client(starlette_app(exc)) as http:
        response = await http.get("/")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers.get("retry-after") == retry_after
    assert response.json()["status"] == status
    assert int(response.headers["content-length"]) == len(response.content)


async def test_a_rate_limited_error_is_429_with_the_ratelimit_headers_of_its_decision() -> None:
    async with client(starlette_app(refused_by_limiter())) as http:
        response = await http.get("/")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    problem = response.json()
    assert problem["type"] == "https://iana.org/assignments/http-problem-types#quota-exceeded"
    assert problem["violated-policies"] == ["search"]
    assert http_sf.parse(response.headers["ratelimit"].encode(), tltype="list") == [
        ("search", {"r": 0, "t": 6})
    ]
    assert http_sf.parse(response.headers["ratelimit-policy"].encode(), tltype="list") == [
        ("search", {"q": 3})
    ]


async def test_a_bulkhead_error_from_a_route_in_fastapi() -> None:
    from fastapi import FastAPI

    app = FastAPI()
    app.add_exception_handler(ResilientError, exception_handler)
    bulkhead = Bulkhead(1)

    @app.get("/")
    async def route() -> dict[str, str]:
        async with bulkhead, bulkhead:
            return {}

    async with client(app) as http:
        response = await http.get("/")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


async def test_on_a_websocket_the_connection_is_closed_with_1013() -> None:
    app = starlette_app(CircuitOpenError("payments", 1.0))
    sent = await run_websocket(app)
    assert sent[0]["type"] == "websocket.accept"
    assert sent[-1] == {"type": "websocket.close", "code": 1013, "reason": ""}


def test_importing_the_asgi_package_does_not_import_starlette() -> None:
    code = (
        "import sys, resilient.integrations.asgi as asgi; "
        "assert asgi.exception_handler; "
        "assert 'starlette' not in sys.modules, 'starlette imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
