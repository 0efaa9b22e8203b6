"""BulkheadMiddleware: 503 when full, the slot held until the response ends, pass-through."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from resilient import AdaptiveBulkhead, Bulkhead
from resilient.integrations.asgi import BulkheadMiddleware

from ._asgi import client, ok_app, run_lifespan, run_websocket


async def test_a_full_bulkhead_answers_503_with_retry_after_without_calling_the_app() -> None:
    bulkhead = Bulkhead(1)
    entered = anyio.Event()
    release = anyio.Event()
    calls: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        entered.set()
        await release.wait()
        await send({"type": "http.response.body", "body": b"b"})

    middleware = BulkheadMiddleware(app, bulkhead=bulkhead)
    results: dict[str, Any] = {}
    async with client(middleware) as http:

        async def first() -> None:
            results["first"] = await http.get("/first")

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await entered.wait()
            # The first response has started but not ended: its slot is still held.
            assert bulkhead.in_use == 1
            refused = await http.get("/second")
            release.set()
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 503
    assert calls == ["/first"]
    assert results["first"].content == b"ab"
    assert bulkhead.in_use == 0


async def test_the_slot_is_released_when_the_app_raises() -> None:
    bulkhead = Bulkhead(1)

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async with client(BulkheadMiddleware(failing, bulkhead=bulkhead)) as http:
        with pytest.raises(RuntimeError):
            await http.get("/")
    assert bulkhead.in_use == 0


async def test_an_adaptive_bulkhead_works_too() -> None:
    bulkhead = AdaptiveBulkhead(initial=2)
    async with client(BulkheadMiddleware(ok_app, bulkhead=bulkhead)) as http:
        for _ in range(5):
            assert (await http.get("/")).status_code == 200
    assert bulkhead.in_use == 0


async def test_lifespan_and_websocket_scopes_pass_through_without_a_slot() -> None:
    bulkhead = Bulkhead(1)
    async with bulkhead:  # the only slot is taken: HTTP would be refused
        app = BulkheadMiddleware(ok_app, bulkhead=bulkhead)
        assert await run_lifespan(app) == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]
        sent = await run_websocket(app)
        assert sent[0]["type"] == "websocket.accept"


async def test_starlette_add_middleware() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/", hello)])
    bulkhead = Bulkhead(2)
    app.add_middleware(BulkheadMiddleware, bulkhead=bulkhead)
    async with client(app) as http:
        assert (await http.get("/")).text == "hello"
    assert bulkhead.in_use == 0


def test_the_constructor_rejects_bad_options_naming_them() -> None:
    with pytest.raises(TypeError, match="app"):
        BulkheadMiddleware("app", bulkhead=Bulkhead(1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bulkhead"):
        BulkheadMiddleware(ok_app, bulkhead=10)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        BulkheadMiddleware(ok_app)  # type: ignore[call-arg]
