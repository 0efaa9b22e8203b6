"""`exception_handler`: resilient's errors raised in a route, answered as HTTP problems.

Starlette (and FastAPI) look exception handlers up along the exception's class hierarchy, so
one registration for `resilient.ResilientError` covers every error the library raises:

- `resilient.RateLimitedError` → 429, with ``RateLimit-Policy`` / ``RateLimit`` when the error
  carries the limiter's `resilient.Decision`;
- `resilient.BulkheadFullError` and `resilient.CircuitOpenError` → 503;
- `resilient.DeadlineExceeded` → 504;
- any other `resilient.ResilientError` → 500 (with no detail from the exception).

The handler only sees errors raised inside routes; the middlewares answer for themselves.
"""

from __future__ import annotations

from typing import Any

from ..._errors import (
    BulkheadFullError,
    CircuitOpenError,
    DeadlineExceeded,
    RateLimitedError,
    Rejected,
)
from ..._rate_limit import Decision
from ._problem import problem_messages
from ._rate_limit import QUOTA_EXCEEDED, policy_header, ratelimit_header, retry_after_value

__all__ = ["exception_handler", "problem_for"]

_TRY_AGAIN_LATER = 1013  # WebSocket close code: "Try Again Later"


def problem_for(exc: BaseException) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The status, headers and problem+json body that answer ``exc``."""
    headers: list[tuple[bytes, bytes]] = []
    extra: dict[str, Any] | None = None
    type_ = "about:blank"
    if isinstance(exc, RateLimitedError):
        status, title = 429, "Too Many Requests"
        detail = f"The request exceeds the rate limit {exc.name!r}."
        type_ = QUOTA_EXCEEDED
        extra = {"violated-policies": [exc.name]}
        decision = exc.decision
        own = getattr(exc, "headers", None)  # set by resilient.integrations.fastapi.RateLimit
        if isinstance(own, dict) and own:
            headers.extend(
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in own.items()
                if name.lower() != "retry-after"
            )
            decision = None
        # The limiter's name names the policy, when it can be written as an sf-string.
        if isinstance(decision, Decision) and exc.name and all(" " <= c <= "~" for c in exc.name):
            headers.append((b"ratelimit-policy", policy_header(exc.name, decision[1], None)))
            headers.append((b"ratelimit", ratelimit_header(exc.name, decision)))
    elif isinstance(exc, BulkheadFullError):
        status, title = 503, "Service Unavailable"
        detail = f"The bulkhead {exc.name!r} is full."
    elif isinstance(exc, CircuitOpenError):
        status, title = 503, "Service Unavailable"
        detail = f"The circuit {exc.name!r} is open."
    elif isinstance(exc, DeadlineExceeded):
        status, title = 504, "Gateway Timeout"
        detail = "The request's deadline passed before a response was ready."
    else:
        status, title = 500, "Internal Server Error"
        detail = "The server could not complete the request."
    if isinstance(exc, Rejected):
        headers.insert(0, (b"retry-after", retry_after_value(exc.retry_after)))
    start, body = problem_messages(
        status, title=title, detail=detail, type_=type_, headers=headers, extra=extra
    )
    return status, list(start["headers"]), body["body"]


async def exception_handler(request: Any, exc: Exception) -> Any:
    """Answer a `resilient.ResilientError` raised in a route with an HTTP problem.

    ```python
    from starlette.applications import Starlette
    from resilient import ResilientError
    from resilient.integrations.asgi import exception_handler

    app = Starlette()
    app.add_exception_handler(ResilientError, exception_handler)
    ```

    Works the same for FastAPI (``app.add_exception_handler``). The answer is an
    ``application/problem+json`` `starlette.responses.Response` (Starlette is imported when
    the handler first runs, so importing this module does not need it) with ``Retry-After``
    (whole seconds, rounded up, at least 1) for rejections. See the module for the statuses.
    On a WebSocket connection, which cannot carry an HTTP answer, the socket is closed with
    code 1013 ("Try Again Later") and nothing is returned.

    Args:
        request: the Starlette ``Request`` (or ``WebSocket``).
        exc: the exception raised by the route.
    """
    if request.scope.get("type") == "websocket":
        await request.close(code=_TRY_AGAIN_LATER)
        return None
    from starlette.responses import Response

    status, headers, body = problem_for(exc)
    response = Response(content=body, status_code=status)
    # Replace the headers Response computed with ours (content type and length included).
    response.raw_headers = headers
    return response
