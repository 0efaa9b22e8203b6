"""Small ASGI apps and a client for the middleware tests."""

from __future__ import annotations

from typing import Any

import httpx

Scope = dict[str, Any]


async def ok_app(scope: Scope, receive: Any, send: Any) -> None:
    """A bare ASGI app: 200 "ok" for HTTP; accepts websockets and echoes one message."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message.get("text")})
        await send({"type": "websocket.close", "code": 1000})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"Content-Type", b"text/plain"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


def client(app: Any, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client that calls ``app`` in process (peer address 127.0.0.1)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=kwargs.pop("peer", ("127.0.0.1", 4321))),
        base_url="http://testserver",
        **kwargs,
    )


async def run_lifespan(app: Any) -> list[str]:
    """Drive a lifespan startup and shutdown through ``app``; the message types sent back."""
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent


async def run_websocket(app: Any, text: str = "hi") -> list[dict[str, Any]]:
    """Drive one websocket conversation through ``app``; the messages it sent."""
    incoming = [{"type": "websocket.connect"}, {"type": "websocket.receive", "text": text}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/ws",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "query_string": b"",
    }
    await app(scope, receive, send)
    return sent
