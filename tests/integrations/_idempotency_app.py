"""The ASGI app the end-to-end idempotency tests serve with uvicorn, in worker processes.

Configured by the environment: ``REDIS_URL`` (the shared store), ``APP_NAME`` (written into
every response), ``SLOW_SECONDS`` (how long the handler takes) and ``LOCK_TIMEOUT``. The handler
counts its runs in Redis (``runs``) and marks when it has started (``started``), so the tests
can see across processes what ran and when.
"""

from __future__ import annotations

import json
import os
from typing import Any

import anyio
import redis.asyncio

from resilient.integrations.asgi import IdempotencyMiddleware
from resilient.stores import RedisStore

REDIS_URL = os.environ["REDIS_URL"]
NAME = os.environ.get("APP_NAME", "app")
SLOW = float(os.environ.get("SLOW_SECONDS", "0.5"))
LOCK_TIMEOUT = float(os.environ.get("LOCK_TIMEOUT", "90"))

counter = redis.asyncio.Redis.from_url(REDIS_URL)


async def handler(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":  # the tests' readiness probe
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await counter.incr("started")
    await anyio.sleep(SLOW)
    runs = await counter.incr("runs")
    payload = {"app": NAME, "pid": os.getpid(), "run": runs, "body": body.decode()}
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"application/json"), (b"set-cookie", b"s=1")],
        }
    )
    await send({"type": "http.response.body", "body": data})


app = IdempotencyMiddleware(
    handler,
    store=RedisStore.from_url(REDIS_URL, asynchronous=True, socket_timeout=2.0),
    lock_timeout=LOCK_TIMEOUT,
)
