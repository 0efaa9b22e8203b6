"""An idempotent payment endpoint: a retried POST charges once.

``POST /payments`` charges a card. Clients send an ``Idempotency-Key``; a retry of the same
request (a timeout, a lost connection) gets the first answer back, marked
``Idempotent-Replayed: true``, and the card is charged once. The same key with another body is
refused with 422; a retry while the first is still running gets 409 and ``Retry-After``.

Inside, the charge itself is also wrapped in ``@idempotent``, keyed by the payment id, so a
worker that retries a message (not an HTTP request) charges once too.

Run it: ``python examples/payments.py`` (memory store), or with ``--redis URL`` / ``REDIS_URL``
to keep the records in Redis, shared by every process of the service.
"""

from __future__ import annotations

import argparse
import os
import uuid
from dataclasses import dataclass

import anyio
import anyio.lowlevel
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import resilient
from resilient.integrations.asgi import IdempotencyMiddleware
from resilient.stores import MemoryStore, RedisStore

charged: list[str] = []


@dataclass
class Receipt:
    """What the payment provider answers."""

    payment_id: str
    amount: int
    currency: str


def build_app(store: MemoryStore | RedisStore) -> Starlette:
    """The service: one route, behind IdempotencyMiddleware."""

    @resilient.idempotent(store=store, key=lambda payment_id, amount, currency: payment_id)
    async def charge(payment_id: str, amount: int, currency: str) -> Receipt:
        charged.append(payment_id)  # the call to the payment provider
        await anyio.lowlevel.checkpoint()
        return Receipt(payment_id, amount, currency)

    async def create_payment(request: Request) -> JSONResponse:
        body = await request.json()
        payment_id = f"pay_{uuid.uuid4().hex[:12]}"
        receipt = await charge(payment_id, int(body["amount"]), str(body["currency"]))
        return JSONResponse(
            {"id": receipt.payment_id, "amount": receipt.amount, "currency": receipt.currency},
            status_code=201,
            headers={"Location": f"/payments/{receipt.payment_id}"},
        )

    app = Starlette(routes=[Route("/payments", create_payment, methods=["POST"])])
    app.add_middleware(IdempotencyMiddleware, store=store, required=True, ttl=86_400)
    return app


async def client_session(app: Starlette) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://payments") as client:
        key = {"Idempotency-Key": f'"{uuid.uuid4()}"', "Authorization": "Bearer shop-1"}
        body = {"amount": 1299, "currency": "EUR"}
        first = await client.post("/payments", json=body, headers=key)
        retry = await client.post("/payments", json=body, headers=key)  # e.g. after a timeout
        print("first:", first.status_code, first.json())
        print(
            "retry:",
            retry.status_code,
            retry.json(),
            "| replayed:",
            retry.headers["idempotent-replayed"],
            "| location:",
            retry.headers["location"],
        )
        assert retry.json() == first.json()
        assert len(charged) == 1

        changed = await client.post("/payments", json={**body, "amount": 1}, headers=key)
        print("same key, other amount:", changed.status_code, changed.json()["title"])
        assert changed.status_code == 422

        missing = await client.post("/payments", json=body)
        print("no key:", missing.status_code, missing.json()["title"])
        assert missing.status_code == 400
        assert len(charged) == 1


def main() -> None:
    parser = argparse.ArgumentParser(description="An idempotent payment endpoint.")
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL"), help="a Redis URL")
    args = parser.parse_args()
    if args.redis:
        store: MemoryStore | RedisStore = RedisStore.from_url(
            args.redis, asynchronous=True, prefix="resilient-example"
        )
        print("records in Redis at", args.redis)
    else:
        store = MemoryStore()
    anyio.run(client_session, build_app(store))
    print("charged:", len(charged), "time(s)")


if __name__ == "__main__":
    main()
