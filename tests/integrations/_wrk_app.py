"""The app the wrk load test serves with ``uvicorn --workers 2``: one shared limit in Redis.

Configured from the environment: ``RESILIENT_WRK_REDIS_URL`` (the test's redis-server) and
``RESILIENT_WRK_NAME`` (the limiter's name, fresh for each run). ``/health`` is exempt from
the limit; every response names the worker process that answered in ``x-worker``.
"""

from __future__ import annotations

import os
from typing import Any

from resilient import TokenBucket
from resilient.integrations.asgi import RateLimitMiddleware, client_address
from resilient.stores import RedisStore

PID = str(os.getpid()).encode()


async def hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"x-worker", PID)],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


def key(scope: Any) -> str | None:
    return None if scope["path"] == "/health" else client_address(scope)


# on_error="raise" with a long socket timeout: a store failure under load shows up as a 500,
# which the test counts as a failure, rather than as a request allowed or refused by mistake.
store = RedisStore.from_url(
    os.environ["RESILIENT_WRK_REDIS_URL"], asynchronous=True, socket_timeout=10.0, on_error="raise"
)
limiter = TokenBucket(
    rate=0.001, capacity=500, store=store, name=os.environ.get("RESILIENT_WRK_NAME", "wrk")
)
app = RateLimitMiddleware(hello, limiter=limiter, key=key)
