"""A FastAPI app behind resilient's ASGI middlewares, served by uvicorn on 127.0.0.1.

- ``DeadlineMiddleware`` turns the caller's ``grpc-timeout`` into the request's deadline;
- ``RateLimitMiddleware`` limits each client address, with the IETF ``RateLimit`` headers;
- ``IdempotencyMiddleware`` replays the answer to a repeated ``Idempotency-Key``;
- ``resilient.integrations.fastapi.RateLimit`` limits one route more tightly.

Run it: ``python examples/fastapi_app.py`` starts the server on a free port, sends a few
requests, prints the answers and stops. ``--serve SECONDS`` keeps it up that long (at most
an hour) for you to try with curl; the port is printed.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time

import httpx
import uvicorn
from fastapi import Depends, FastAPI

import resilient
from resilient import ResilientError, TokenBucket
from resilient.integrations.asgi import (
    DeadlineMiddleware,
    IdempotencyMiddleware,
    RateLimitMiddleware,
    client_address,
    exception_handler,
)
from resilient.integrations.fastapi import RateLimit
from resilient.stores import MemoryStore

app = FastAPI()
orders: list[dict[str, object]] = []


@app.get("/time-left")
async def time_left() -> dict[str, float | None]:
    """How much of the caller's deadline is left when the route runs."""
    return {"seconds": resilient.remaining()}


@app.post("/orders", status_code=201)
async def create_order(order: dict[str, object]) -> dict[str, object]:
    """Creates an order; a retry with the same Idempotency-Key gets the first answer."""
    orders.append(order)
    return {"id": len(orders), **order}


three_a_minute = RateLimit(TokenBucket(rate=3 / 60, capacity=3, name="search"), key=client_address)


@app.get("/search", dependencies=[Depends(three_a_minute)])
async def search(q: str = "") -> list[str]:
    """A costly route with a tighter limit of its own."""
    return [q]


# add_middleware puts each new middleware outside the ones added before: innermost first.
app.add_middleware(IdempotencyMiddleware, store=MemoryStore())
app.add_middleware(
    RateLimitMiddleware,
    limiter=TokenBucket(rate=100 / 60, capacity=100),  # 100 a minute per client
    key=client_address,
)
app.add_middleware(DeadlineMiddleware, default=10.0, maximum=30.0)
app.add_exception_handler(ResilientError, exception_handler)


def serve(sock: socket.socket) -> tuple[uvicorn.Server, threading.Thread]:
    """Starts uvicorn on ``sock`` in a thread and returns once it accepts connections."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10.0
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return server, thread


def exercise(base_url: str) -> None:
    """A few requests that show each middleware at work."""
    with httpx.Client(base_url=base_url, timeout=5.0) as client:
        answer = client.get("/time-left", headers={"grpc-timeout": "5S"})
        print(
            "GET /time-left with 5 s:", answer.json(), "| RateLimit:", answer.headers["ratelimit"]
        )
        assert 0 < answer.json()["seconds"] <= 5.0

        key = {"Idempotency-Key": '"order-7f3a"'}
        first = client.post("/orders", json={"sku": "A1"}, headers=key)
        again = client.post("/orders", json={"sku": "A1"}, headers=key)
        print(
            "POST /orders twice:",
            first.status_code,
            first.json(),
            "then",
            again.status_code,
            again.json(),
            "replayed:",
            again.headers.get("idempotent-replayed"),
        )
        assert again.json() == first.json()
        assert len(orders) == 1

        statuses = [client.get("/search", params={"q": "x"}).status_code for _ in range(4)]
        refused = client.get("/search")
        print(
            "GET /search x5:",
            [*statuses, refused.status_code],
            "| Retry-After:",
            refused.headers["retry-after"],
        )
        assert statuses == [200, 200, 200, 429]
        assert refused.status_code == 429


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", type=float, default=0.0, metavar="SECONDS")
    args = parser.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server, thread = serve(sock)
    try:
        base_url = f"http://127.0.0.1:{port}"
        exercise(base_url)
        if args.serve > 0:
            print(f"serving on {base_url} for {min(args.serve, 3600.0):g} s")
            time.sleep(min(args.serve, 3600.0))
    finally:
        server.should_exit = True
        thread.join(timeout=10.0)
        sock.close()


if __name__ == "__main__":
    main()
