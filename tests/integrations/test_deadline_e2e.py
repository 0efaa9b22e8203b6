"""A deadline end to end: two uvicorn services on 127.0.0.1, the budget shrinking hop by hop.

The first service (``front``) is called with ``grpc-timeout``; `DeadlineMiddleware` makes that
its deadline. It spends a little of it, then calls the second service (``back``) through
`AsyncResilientTransport(propagate_deadline=True)`, whose own `DeadlineMiddleware` reads what
is left. Nothing here mocks the network.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import resilient
from resilient import Retry
from resilient.integrations._timeout_header import parse_grpc_timeout
from resilient.integrations.asgi import DeadlineMiddleware
from resilient.integrations.httpx import AsyncResilientTransport

from ._httpx_servers import Server

WORK = 0.05  # seconds the front service spends before calling the back one


class Back:
    """The second service: reports the header it got and the deadline it runs under."""

    def __init__(self) -> None:
        self.calls = 0
        self.app = Starlette(routes=[Route("/", self.endpoint)])
        self.app.add_middleware(DeadlineMiddleware)

    async def endpoint(self, request: Request) -> JSONResponse:
        self.calls += 1
        return JSONResponse(
            {"header": request.headers.get("grpc-timeout"), "remaining": resilient.remaining()}
        )


def front_app(back_url: str) -> Starlette:
    """The first service: works a little, then calls the back service through the transport."""

    # Built once, outside the requests (building one takes a while: its TLS context); no
    # keep-alive, so that no pooled connection outlives the test.
    no_keep_alive = httpx.Limits(max_keepalive_connections=0)
    clients = {
        propagate: httpx.AsyncClient(
            transport=AsyncResilientTransport(
                httpx.AsyncHTTPTransport(limits=no_keep_alive),
                retry=Retry(attempts=1),
                propagate_deadline=propagate,
            )
        )
        for propagate in (True, False)
    }

    async def endpoint(request: Request) -> JSONResponse:
        arrived = resilient.remaining()
        await anyio.sleep(WORK)
        if request.query_params.get("block"):
            time.sleep(float(request.query_params["block"]))  # spend the budget, blocking
        client = clients[request.query_params.get("propagate", "1") == "1"]
        sent = resilient.remaining()
        answer = (await client.get(back_url)).json()
        return JSONResponse({"arrived": arrived, "sent": sent, "back": answer})

    app = Starlette(routes=[Route("/", endpoint)])
    app.add_middleware(DeadlineMiddleware)
    return app


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[Back, str]]:
    back = Back()
    with Server(back.app) as back_server, Server(front_app(back_server.url + "/")) as front:
        yield back, front.url + "/"


def _call(url: str, **headers: str) -> httpx.Response:
    with httpx.Client(timeout=30.0) as client:
        return client.get(url, headers=headers)


def test_the_second_service_gets_less_time_than_the_first(services: tuple[Back, str]) -> None:
    _, front = services
    response = _call(front, **{"grpc-timeout": "500m"})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert 0.0 < body["arrived"] <= 0.5
    assert body["sent"] <= body["arrived"] - WORK
    header = body["back"]["header"]
    assert header is not None
    sent = parse_grpc_timeout(header)
    assert sent is not None
    assert sent <= body["sent"] < 0.5 - WORK  # rounded down to whole milliseconds
    assert 0.0 < body["back"]["remaining"] <= sent  # less again, on arrival at the back


def test_no_header_goes_downstream_unless_asked(services: tuple[Back, str]) -> None:
    _, front = services
    response = _call(front + "?propagate=0", **{"grpc-timeout": "500m"})
    assert response.status_code == 200
    assert response.json()["back"] == {"header": None, "remaining": None}


def test_a_spent_budget_is_answered_504_without_calling_the_second(
    services: tuple[Back, str],
) -> None:
    back, front = services
    before = back.calls
    assert _call(front, **{"grpc-timeout": "0m"}).status_code == 504  # spent on arrival
    response = _call(front + "?block=0.2", **{"grpc-timeout": "150m"})  # spent while working
    assert response.status_code == 504
    assert response.headers["content-type"].startswith("application/problem+json")
    assert back.calls == before
