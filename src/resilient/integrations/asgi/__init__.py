"""Pure ASGI middleware: deadlines, rate limits, idempotency keys and load shedding.

Each middleware takes the app first and its options as keywords, passes ``lifespan`` and
``websocket`` scopes through untouched, and answers refusals itself with an
``application/problem+json`` body (RFC 9457). They work with Starlette's and FastAPI's
``app.add_middleware(Cls, **options)`` and as plain wrappers of any ASGI callable, on asyncio
and trio. Nothing here imports a web framework.
"""

from __future__ import annotations

from ._idempotency import IdempotencyMiddleware

__all__: list[str] = ["IdempotencyMiddleware"]
