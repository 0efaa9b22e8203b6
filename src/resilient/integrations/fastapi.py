"""FastAPI: a rate limit on one route or one router, as a dependency.

```python
from fastapi import Depends, FastAPI
from resilient import TokenBucket
from resilient.integrations.asgi import client_address
from resilient.integrations.fastapi import RateLimit

app = FastAPI()
five_a_minute = RateLimit(TokenBucket(rate=5 / 60, capacity=5), key=client_address)


@app.get("/search", dependencies=[Depends(five_a_minute)])
async def search() -> dict[str, str]:
    return {"ok": "yes"}
```

Refused requests get the same 429 as from `resilient.integrations.asgi.RateLimitMiddleware`:
``Retry-After``, ``RateLimit-Policy`` and ``RateLimit``. Allowed responses carry
``RateLimit-Policy`` and ``RateLimit`` too, **as long as FastAPI builds the response**: an
endpoint that returns its own ``Response`` object loses the headers set by dependencies (FastAPI
merges them only into responses it builds), so copy them there, or use the middleware.
"""

# No ``from __future__ import annotations``: FastAPI reads the dependency's annotations.
from collections.abc import Callable, MutableMapping
from typing import Any

from .._errors import RateLimitedError
from .._rate_limit import Decision, RateLimiter

try:
    from fastapi import HTTPException, Request, Response
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "resilient.integrations.fastapi needs FastAPI: pip install fastapi"
    ) from error

from .asgi._rate_limit import (
    _window_seconds,
    check_policy_name,
    policy_header,
    ratelimit_header,
    retry_after_value,
)

__all__ = ["RateLimit", "RateLimitExceeded"]


class RateLimitExceeded(RateLimitedError, HTTPException):
    """What `RateLimit` raises: a `resilient.RateLimitedError` that is also an ``HTTPException``.

    With `resilient.integrations.asgi.exception_handler` registered for
    `resilient.ResilientError`, it is answered as a problem+json 429 (the handler is found first
    along the class hierarchy); without it, FastAPI's own ``HTTPException`` handler answers 429
    with a JSON ``detail``. Both carry the rate-limit headers.
    """

    def __init__(self, name: str, decision: Decision, headers: dict[str, str]) -> None:
        RateLimitedError.__init__(self, name, decision[3], decision=decision)
        HTTPException.__init__(
            self, status_code=429, detail=f"rate limit {name!r} exceeded", headers=headers
        )

    def __str__(self) -> str:
        return RateLimitedError._describe(self)


class RateLimit:
    """A FastAPI dependency charging each request to ``limiter``: ``Depends(RateLimit(...))``.

    Use it on one route (``dependencies=[Depends(RateLimit(...))]`` in the route decorator) or
    on a whole router (``APIRouter(dependencies=[...])``, ``app.include_router(...,
    dependencies=[...])``). Each request charges ``cost`` units of ``key(request.scope)``;
    ``None`` exempts it. A refusal raises `RateLimitExceeded` (429 with ``Retry-After``,
    ``RateLimit-Policy`` and ``RateLimit``); an allowed request gets ``RateLimit-Policy`` and
    ``RateLimit`` on its response, unless the endpoint returns its own ``Response`` (see the
    module). The store's ``on_error`` applies as in the middleware.

    Args:
        limiter: a `resilient.TokenBucket` or `resilient.SlidingWindow`.
        key: ``(scope) -> str | None``, as for the middleware (e.g. `client_address`).
        cost: units per request, from 1 up to the limit.
        policy_name: the policy's name in the headers (default: the limiter's ``name``, which
            must then be printable ASCII).

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: ``cost`` is out of range or the policy name is not printable ASCII.
    """

    __slots__ = ("_atry", "_policy", "cost", "key", "limiter", "policy_name")

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        key: Callable[[MutableMapping[str, Any]], "str | None"],
        cost: int = 1,
        policy_name: "str | None" = None,
    ) -> None:
        if not isinstance(limiter, RateLimiter):
            raise TypeError(f"limiter must be a TokenBucket or a SlidingWindow, got {limiter!r}")
        if not callable(key):
            raise TypeError(f"key must be a function (scope) -> str | None, got {key!r}")
        self.limiter = limiter
        self.key = key
        self.cost = limiter._check_cost(cost)
        self.policy_name = check_policy_name(
            limiter.name if policy_name is None else policy_name, "policy_name"
        )
        self._atry = limiter.atry_acquire
        self._policy = policy_header(
            self.policy_name, limiter._limit, _window_seconds(limiter)
        ).decode("ascii")

    async def __call__(self, request: Request, response: Response) -> None:
        """Charge the request; raise `RateLimitExceeded` when it is over the limit."""
        key = self.key(request.scope)
        if key is None:
            return
        decision = await self._atry(key, self.cost)
        current = ratelimit_header(self.policy_name, decision).decode("ascii")
        if not decision[0]:
            headers = {
                "Retry-After": retry_after_value(decision[3]).decode("ascii"),
                "RateLimit-Policy": self._policy,
                "RateLimit": current,
            }
            raise RateLimitExceeded(self.policy_name, decision, headers)
        response.headers.append("RateLimit-Policy", self._policy)
        response.headers.append("RateLimit", current)

    def __repr__(self) -> str:
        return f"RateLimit({self.limiter!r}, key={self.key!r}, cost={self.cost})"
