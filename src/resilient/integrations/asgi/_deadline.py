"""`DeadlineMiddleware`: the caller's remaining time becomes the request's deadline.

The time a caller grants travels as a duration (never a clock time, so clock skew between
hosts does not matter). Three formats are read:

- ``grpc-timeout``: one to eight digits and a unit, ``H`` ``M`` ``S`` ``m`` ``u`` ``n``
  (``487m`` is 487 ms), as gRPC sends it;
- ``x-envoy-expected-rq-timeout-ms`` (and ``x-envoy-upstream-rq-timeout-ms``): integer
  milliseconds, as Envoy sends it upstream;
- ``x-request-timeout``: seconds as a decimal (``2``, ``0.25``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable

from ..._clock import Clock, check_clock
from ..._errors import DeadlineExceeded
from ..._rate_limit import _check_seconds
from ..._timeout import Timeout
from .._timeout_header import parse_grpc_timeout
from ._problem import ASGIApp, Message, Receive, Scope, Send, header_value, send_problem
from ._rate_limit import check_app

__all__ = ["DeadlineMiddleware", "parse_milliseconds", "parse_seconds"]

_MILLIS = re.compile(rb"[0-9]{1,15}")
_SECONDS = re.compile(rb"[0-9]{1,12}(?:\.[0-9]{1,9})?")


def parse_milliseconds(value: bytes) -> float | None:
    """Seconds in an integer-milliseconds value (``1500``), or None when malformed.

    One to fifteen ASCII digits and nothing else (no sign, no spaces, no fraction).
    """
    return int(value) / 1000.0 if _MILLIS.fullmatch(value) else None


def parse_seconds(value: bytes) -> float | None:
    """Seconds in a decimal value (``2``, ``0.25``), or None when malformed.

    Up to twelve digits, optionally a point and up to nine more; no sign, exponent, spaces,
    ``inf`` or ``nan``.
    """
    return float(value) if _SECONDS.fullmatch(value) else None


def _grpc(value: bytes) -> float | None:
    return parse_grpc_timeout(value)


#: Header name -> parser of its value (None when malformed).
FORMATS: dict[str, Callable[[bytes], float | None]] = {
    "grpc-timeout": _grpc,
    "x-envoy-expected-rq-timeout-ms": parse_milliseconds,
    "x-envoy-upstream-rq-timeout-ms": parse_milliseconds,
    "x-request-timeout": parse_seconds,
}


def _check_optional_seconds(value: object, argument: str) -> float | None:
    return None if value is None else _check_seconds(value, argument)


class DeadlineMiddleware:
    """Pure ASGI middleware that scopes the caller's remaining time as the request's deadline.

    ```python
    from starlette.applications import Starlette
    from resilient.integrations.asgi import DeadlineMiddleware

    app = Starlette()
    app.add_middleware(DeadlineMiddleware, default=10.0, maximum=30.0)
    ```

    - The headers in ``headers`` are looked at in that order and the **first one present with
      a well-formed value wins**; a malformed value is ignored as if absent (never a 500).
    - The time is capped at ``maximum``; with no usable header, ``default`` applies; with
      neither, the request has no deadline and the app is called as it is.
    - The deadline is in scope for the app (`resilient.remaining`, every policy and the httpx
      transport see it), in the endpoint's own task and in the threads that run sync
      endpoints (they copy the context).
    - Already expired on arrival (``grpc-timeout: 0m``): 504 without calling the app.
    - When it passes while the app runs, the app is cancelled (on asyncio and trio); if no
      response had started, the middleware answers 504; if one had, it raises
      `resilient.DeadlineExceeded` so that the server drops the connection rather than end a
      truncated body as if it were complete. A `resilient.DeadlineExceeded` that the app
      raises itself once the request's deadline has passed is answered 504 the same way.

    Args:
        app: the ASGI application to wrap.
        headers: the header names to read, first match wins; each must be one of
            ``grpc-timeout``, ``x-envoy-expected-rq-timeout-ms``,
            ``x-envoy-upstream-rq-timeout-ms`` and ``x-request-timeout`` (any case).
        default: seconds allowed when no header gives a time (None: no deadline).
        maximum: the most seconds a caller may grant (None: no cap); also caps ``default``.
        clock: where the deadline is measured (default the system clock; tests pass a
            `resilient.testing.FakeClock`).

    Raises:
        TypeError: an argument has the wrong type (the message names it).
        ValueError: an unknown header name, or ``default`` / ``maximum`` not a finite number > 0.
    """

    __slots__ = ("_clock", "_readers", "app", "default", "headers", "maximum")

    def __init__(
        self,
        app: ASGIApp,
        *,
        headers: Iterable[str] = (
            "grpc-timeout",
            "x-envoy-expected-rq-timeout-ms",
            "x-request-timeout",
        ),
        default: float | None = None,
        maximum: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        check_app(app)
        if isinstance(headers, (str, bytes)) or not isinstance(headers, Iterable):
            raise TypeError(f"headers must be a tuple of header names, got {headers!r}")
        names = tuple(headers)
        readers = []
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"headers must hold str header names, got {name!r}")
            parser = FORMATS.get(name.lower())
            if parser is None:
                raise ValueError(
                    f"headers: unknown deadline header {name!r}; known: {', '.join(FORMATS)}"
                )
            readers.append((name.lower().encode("ascii"), parser))
        self.app = app
        self.headers = names
        self._readers = tuple(readers)
        self.default = _check_optional_seconds(default, "default")
        self.maximum = _check_optional_seconds(maximum, "maximum")
        if self.default is not None and self.maximum is not None:
            self.default = min(self.default, self.maximum)
        self._clock = check_clock(clock)

    def _seconds(self, scope: Scope) -> float | None:
        """The time granted to this request, capped, or the default."""
        for name, parse in self._readers:
            raw = header_value(scope, name)
            if raw is None:
                continue
            seconds = parse(raw)
            if seconds is None:
                continue
            maximum = self.maximum
            return seconds if maximum is None or seconds <= maximum else maximum
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection (see the class)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seconds = self._seconds(scope)
        if seconds is None:
            await self.app(scope, receive, send)
            return
        clock = self._clock
        at = clock.monotonic() + seconds
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            async with Timeout(seconds, name="DeadlineMiddleware", clock=clock):
                await self.app(scope, receive, watch)
        except DeadlineExceeded:
            if started or clock.monotonic() < at:
                raise
            await send_problem(
                send,
                504,
                title="Gateway Timeout",
                detail=_detail(seconds),
            )


def _detail(seconds: float) -> str:
    if seconds <= 0:
        return "The request's deadline had already passed when it arrived."
    return f"The request's deadline ({math.ceil(seconds * 1000)} ms) passed before a response."
