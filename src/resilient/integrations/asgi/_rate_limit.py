"""`RateLimitMiddleware`: a rate limit per key, with the IETF ``RateLimit`` headers.

The headers follow draft-ietf-httpapi-ratelimit-headers; both are Structured Fields lists
(RFC 9651) with one item named after the policy::

    RateLimit-Policy: "default";q=100;w=60
    RateLimit: "default";r=0;t=17

- ``q``: the limit (a `TokenBucket`'s ``capacity``, a `SlidingWindow`'s ``limit``);
- ``w``: the window in whole seconds, rounded up (a `SlidingWindow`'s ``window``, or the time a
  `TokenBucket` takes to refill from empty, ``capacity / rate``);
- ``r``: what is left right now, after this request;
- ``t``: the seconds until the key is back to full, rounded up.

A refused request gets 429 with ``Retry-After`` (whole seconds, rounded up) and an RFC 9457
problem document of type ``https://iana.org/assignments/http-problem-types#quota-exceeded``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from ..._rate_limit import TICKS_PER_SECOND, Decision, RateLimiter, SlidingWindow, TokenBucket
from ._problem import ASGIApp, Message, Receive, Scope, Send, problem_messages

__all__ = ["RateLimitMiddleware", "check_policy_name", "policy_header", "ratelimit_header"]

QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"
_LEGACY_NAMES = (b"x-ratelimit-limit", b"x-ratelimit-remaining", b"x-ratelimit-reset")


def check_policy_name(value: object, argument: str = "policy_name") -> str:
    """``value`` if it can be written as the sf-string naming a policy, else an error.

    The draft makes a policy's name a Structured Fields String: printable ASCII (``0x20`` to
    ``0x7e``); quotes and backslashes are escaped when written.
    """
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be a str, got {value!r}")
    if not value or not all(" " <= c <= "~" for c in value):
        raise ValueError(
            f"{argument} must be a non-empty string of printable ASCII characters "
            f"(a Structured Fields String), got {value!r}"
        )
    return value


def _sf_string(name: str) -> bytes:
    return b'"' + name.replace("\\", "\\\\").replace('"', '\\"').encode("ascii") + b'"'


def _window_seconds(limiter: RateLimiter) -> int | None:
    """The limiter's window in whole seconds (rounded up, at least 1), or None if unknown."""
    if isinstance(limiter, TokenBucket):
        ticks: int = limiter._tolerance  # capacity x the emission interval, as the bucket runs
    elif isinstance(limiter, SlidingWindow):
        ticks = limiter._window_ticks
    else:
        return None
    return max(1, -(-ticks // TICKS_PER_SECOND))


def policy_header(name: str, limit: int, window: int | None) -> bytes:
    """A ``RateLimit-Policy`` value: ``"name";q=limit;w=window`` (``w`` left out when None)."""
    value = _sf_string(name) + b";q=%d" % limit
    return value if window is None else value + b";w=%d" % window


def ratelimit_header(name: str, decision: Decision) -> bytes:
    """A ``RateLimit`` value for ``decision``: ``"name";r=remaining;t=reset``."""
    return _sf_string(name) + b";r=%d;t=%d" % (decision[2], math.ceil(decision[4]))


def retry_after_value(seconds: float) -> bytes:
    """``Retry-After`` delay-seconds: ``seconds`` rounded up to a whole second, at least 1."""
    return b"%d" % max(1, math.ceil(seconds))


def check_app(app: object) -> None:
    """``app`` must be an ASGI callable."""
    if not callable(app):
        raise TypeError(f"app must be an ASGI application (a callable), got {app!r}")


class RateLimitMiddleware:
    """Pure ASGI middleware that refuses requests over a rate limit with 429.

    ```python
    from starlette.applications import Starlette
    from resilient import TokenBucket
    from resilient.integrations.asgi import RateLimitMiddleware, client_address

    app = Starlette()
    app.add_middleware(
        RateLimitMiddleware, limiter=TokenBucket(rate=100 / 60, capacity=100), key=client_address
    )
    ```

    Each HTTP request charges ``cost`` units of the key ``key(scope)`` on ``limiter``. Allowed
    requests go to the app, and its response gets ``RateLimit-Policy`` and ``RateLimit`` (and,
    with ``legacy_headers``, ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
    ``X-RateLimit-Reset`` in seconds, unless the app set those itself). Refused requests get 429
    with the same headers, ``Retry-After`` and a problem+json body, without calling the app.
    A ``key`` returning ``None`` exempts the request: no charge and no headers. ``lifespan``
    and ``websocket`` scopes pass through untouched.

    When the limiter's store fails, its ``on_error`` decides: ``"allow"`` lets the request
    through, ``"deny"`` answers 429 with the store's ``error_retry_after``, and ``"raise"``
    lets `resilient.StoreUnavailable` propagate to the server (which answers 500).

    Args:
        app: the ASGI application to wrap.
        limiter: a `resilient.TokenBucket` or `resilient.SlidingWindow`; share it (and its
            store) between middlewares and processes to share the limit.
        key: ``(scope) -> str | None``, which limit a request is charged to (see
            `client_address`, `forwarded_client_address` and `header_key`); required.
        cost: units per request, from 1 up to the limit.
        policy_name: the policy's name in the headers and in the problem's
            ``violated-policies``; printable ASCII.
        legacy_headers: also send the ``X-RateLimit-*`` headers.

    Raises:
        TypeError: an argument has the wrong type (the message names it).
        ValueError: ``cost`` is out of range or ``policy_name`` is not a valid name.
    """

    __slots__ = (
        "_atry",
        "_body",
        "_legacy",
        "_policy",
        "_prefix",
        "_title",
        "app",
        "cost",
        "key",
        "legacy_headers",
        "limiter",
        "policy_name",
    )

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter,
        key: Callable[[Scope], str | None],
        cost: int = 1,
        policy_name: str = "default",
        legacy_headers: bool = False,
    ) -> None:
        check_app(app)
        if not isinstance(limiter, RateLimiter):
            raise TypeError(f"limiter must be a TokenBucket or a SlidingWindow, got {limiter!r}")
        if not callable(key):
            raise TypeError(
                f"key must be a function (scope) -> str | None, such as client_address, got {key!r}"
            )
        if not isinstance(legacy_headers, bool):
            raise TypeError(f"legacy_headers must be a bool, got {legacy_headers!r}")
        self.app = app
        self.limiter = limiter
        self.key = key
        self.cost = limiter._check_cost(cost)
        self.policy_name = check_policy_name(policy_name)
        self.legacy_headers = legacy_headers
        self._atry = limiter.atry_acquire
        limit = limiter._limit
        self._policy = (
            b"ratelimit-policy",
            policy_header(policy_name, limit, _window_seconds(limiter)),
        )
        self._prefix = _sf_string(policy_name)
        self._legacy = (_LEGACY_NAMES[0], b"%d" % limit) if legacy_headers else None
        start, body = problem_messages(
            429,
            title="Too Many Requests",
            detail=f"The request exceeds the quota of the policy {policy_name!r}.",
            type_=QUOTA_EXCEEDED,
            extra={"violated-policies": [policy_name]},
        )
        self._title = start["headers"][:2]  # content-type and content-length
        self._body = body["body"]

    def _headers(self, decision: Decision) -> list[tuple[bytes, bytes]]:
        headers = [
            self._policy,
            (b"ratelimit", self._prefix + b";r=%d;t=%d" % (decision[2], math.ceil(decision[4]))),
        ]
        if self._legacy is not None:
            headers.append(self._legacy)
            headers.append((_LEGACY_NAMES[1], b"%d" % decision[2]))
            headers.append((_LEGACY_NAMES[2], b"%d" % math.ceil(decision[4])))
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection (see the class)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = self.key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        decision = await self._atry(key, self.cost)
        extra = self._headers(decision)
        if not decision[0]:
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [
                        *self._title,
                        (b"retry-after", retry_after_value(decision[3])),
                        *extra,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": self._body, "more_body": False})
            return
        await self.app(scope, receive, _adding(send, extra, self._legacy is not None))


def _adding(send: Send, extra: list[tuple[bytes, bytes]], legacy: bool) -> Send:
    """``send`` with ``extra`` appended to the response's headers."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers: Iterable[Any] = message.get("headers") or ()
            added = extra
            if legacy:
                # The app's own X-RateLimit-* values win (names compared case-insensitively).
                headers = list(headers)
                present = {bytes(name).lower() for name, _ in headers}
                added = [
                    pair for pair in extra if pair[0] not in present or pair[0] not in _LEGACY_NAMES
                ]
            message = dict(message)
            message["headers"] = [*headers, *added]
        await send(message)

    return send_with_headers
