"""Pure ASGI middleware: deadlines, rate limits, idempotency keys and load shedding.

Each middleware takes the app first and its options as keywords, passes ``lifespan`` and
``websocket`` scopes through untouched, and answers refusals itself with an
``application/problem+json`` body (RFC 9457). They work with Starlette's and FastAPI's
``app.add_middleware(Cls, **options)`` and as plain wrappers of any ASGI callable, on asyncio
and trio. Nothing here imports a web framework.

Order them outermost first: `DeadlineMiddleware`, `RateLimitMiddleware`,
``IdempotencyMiddleware``, `BulkheadMiddleware` (with Starlette's ``add_middleware``, which
makes the last one added the outermost, add them in the reverse order).
"""

from __future__ import annotations

from ._bulkhead import BulkheadMiddleware
from ._deadline import DeadlineMiddleware
from ._exceptions import exception_handler
from ._keys import client_address, forwarded_client_address, header_key
from ._rate_limit import RateLimitMiddleware

__all__: list[str] = [
    "BulkheadMiddleware",
    "DeadlineMiddleware",
    "RateLimitMiddleware",
    "client_address",
    "exception_handler",
    "forwarded_client_address",
    "header_key",
]
