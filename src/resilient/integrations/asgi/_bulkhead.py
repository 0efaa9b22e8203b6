"""`BulkheadMiddleware`: shed load with 503 when too many requests are in flight."""

from __future__ import annotations

from ..._bulkhead import Bulkhead
from ..._errors import BulkheadFullError
from ._problem import ASGIApp, Receive, Scope, Send, send_problem
from ._rate_limit import check_app, retry_after_value

__all__ = ["BulkheadMiddleware"]


class BulkheadMiddleware:
    """Pure ASGI middleware that runs each HTTP request in a slot of ``bulkhead``.

    ```python
    from starlette.applications import Starlette
    from resilient import Bulkhead
    from resilient.integrations.asgi import BulkheadMiddleware

    app = Starlette()
    app.add_middleware(BulkheadMiddleware, bulkhead=Bulkhead(64, max_waiting=32, max_wait=0.5))
    ```

    A request that gets no slot (none free, and no room or time to queue for one, as the
    bulkhead's ``max_waiting`` and ``max_wait`` and the request's deadline allow) is answered
    503 with ``Retry-After`` (whole seconds, at least 1) and a problem+json body, without
    calling the app. The slot is held while the app runs, that is until the whole response
    has been sent (streamed bodies included) and anything the framework runs after it
    (Starlette's background tasks) has finished. An `resilient.AdaptiveBulkhead` learns from
    each request's latency and errors. ``lifespan`` and ``websocket`` scopes pass through.

    Args:
        app: the ASGI application to wrap.
        bulkhead: a `resilient.Bulkhead` or `resilient.AdaptiveBulkhead`.

    Raises:
        TypeError: ``app`` is not callable or ``bulkhead`` is not a bulkhead.
    """

    __slots__ = ("app", "bulkhead")

    def __init__(self, app: ASGIApp, *, bulkhead: Bulkhead) -> None:
        check_app(app)
        if not isinstance(bulkhead, Bulkhead):
            raise TypeError(f"bulkhead must be a Bulkhead or an AdaptiveBulkhead, got {bulkhead!r}")
        self.app = app
        self.bulkhead = bulkhead

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection (see the class)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bulkhead = self.bulkhead
        try:
            await bulkhead.__aenter__()
        except BulkheadFullError as error:
            await send_problem(
                send,
                503,
                title="Service Unavailable",
                detail=f"The server is at its concurrency limit ({bulkhead.name!r}).",
                headers=[(b"retry-after", retry_after_value(error.retry_after))],
            )
            return
        try:
            await self.app(scope, receive, send)
        except BaseException as exc:
            await bulkhead.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        await bulkhead.__aexit__(None, None, None)
