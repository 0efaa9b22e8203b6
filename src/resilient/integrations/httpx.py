"""httpx transports that retry, break circuits, rate-limit and carry deadlines.

```python
import httpx

from resilient import CircuitBreaker, Retry
from resilient.integrations.httpx import ResilientTransport
from resilient.testing import FakeClock

answers = iter([503, 200])
inner = httpx.MockTransport(lambda request: httpx.Response(next(answers)))
transport = ResilientTransport(
    inner,
    retry=Retry(attempts=3, clock=FakeClock()),
    breaker_factory=lambda origin: CircuitBreaker(origin),
)
with httpx.Client(transport=transport) as client:
    assert client.get("https://example.org/").status_code == 200
```

`ResilientTransport` (for `httpx.Client`) and `AsyncResilientTransport` (for
`httpx.AsyncClient`, on asyncio and trio) wrap any httpx transport by composition. Both are thin:
what may be retried, how long to wait, how the timeouts shrink to the deadline and what the
circuit breaker counts are decided by the plain functions of this module; each twin only sends,
sleeps and closes. docs/httpx.md gives the rules and the reasons for them.

The transport sees only what happens before ``handle_request`` returns (connecting, writing the
request, reading the response head): an error raised later, while the caller reads a streamed
body, reaches the caller and cannot be retried here.
"""

from __future__ import annotations

import math
import string
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Final

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "resilient.integrations.httpx needs httpx: pip install 'resilient-patterns[httpx]'"
    ) from exc

from .._circuit_breaker import FAILURE, SUCCESS, CircuitBreaker
from .._clock import switches
from .._deadline import Deadline, get_deadline
from .._errors import DeadlineExceeded
from .._events import (
    HUB,
    DeadlineExceededEvent,
    RetriesExhausted,
    RetryBudgetExhaustedEvent,
    RetryScheduled,
)
from .._hedge import Hedge
from .._rate_limit import RateLimiter, _check_int
from .._retry import Retry
from ._timeout_header import format_grpc_timeout

__all__ = ["AsyncResilientTransport", "ResilientTransport"]

#: Methods that RFC 9110 (section 9.2.2) defines as idempotent.
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
#: Methods that ``idempotency_keys=True`` gives an ``Idempotency-Key`` when they lack one.
KEYED_METHODS: Final = frozenset({"POST", "PATCH"})
#: Errors raised before the request left: retried for every method.
NEVER_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
#: Transport errors that the same request would raise again: never retried.
DETERMINISTIC: Final = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)
#: At most this many bytes of a response to be retried are read before it is closed.
DRAIN_LIMIT: Final = 64 * 1024

_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_TIMEOUT_KEYS: Final = ("connect", "read", "write", "pool")
_TOKEN_CHARS: Final = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
_UNLIMITED: Final = math.inf


# -- the decisions (plain code shared by both transports) ----------------------------------------


def origin_of(url: httpx.URL) -> str:
    """``scheme://host:port`` of ``url``, with the scheme's default port written out."""
    host = url.host
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    port = url.port
    if port is None:
        port = _DEFAULT_PORTS.get(url.scheme, 0)
    return f"{url.scheme}://{host}:{port}"


def retry_after(response: httpx.Response) -> float | None:
    """Seconds a response's ``Retry-After`` asks to wait, or None without a usable value.

    Both forms of RFC 9110: delay-seconds (``120``) and an HTTP-date, which is measured against
    the response's own ``Date`` header when it has a valid one (no clock skew), else against
    the local clock. Malformed values are ignored. A date in the past gives ``0.0``.
    """
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # Beyond 15 digits (over 31 million years) a float cannot hold it; any cap is lower.
        return float(int(value)) if len(value) <= 15 else math.inf
    when = _http_date(value)
    if when is None:
        return None
    now = _http_date(response.headers.get("date"))
    if now is None:
        now = datetime.now(timezone.utc)
    seconds = (when - now).total_seconds()
    return seconds if seconds > 0.0 else 0.0


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # pragma: no cover - Python < 3.10 returned None
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when


def may_retry_error(error: BaseException, idempotent: bool, replayable: bool) -> bool:
    """Whether a request that raised ``error`` may be sent again.

    Connect errors, connect timeouts and pool timeouts (the request never left) for every
    method; other transport errors only for idempotent requests; never a body that cannot be
    replayed, never an error the same request would raise again, never anything that is not an
    `httpx.TransportError` (cancellation included).
    """
    if not replayable or not isinstance(error, httpx.TransportError):
        return False
    if isinstance(error, NEVER_SENT):
        return True
    return idempotent and not isinstance(error, DETERMINISTIC)


def tightened(timeout: object, left: float) -> dict[str, float | None]:
    """A fresh httpx timeout dict with every entry lowered to ``left`` seconds.

    ``timeout`` is the request's ``extensions["timeout"]`` (``None`` entries mean no limit);
    a missing or malformed one is taken as no limits at all.
    """
    if not isinstance(timeout, dict):
        return dict.fromkeys(_TIMEOUT_KEYS, left)
    result: dict[str, float | None] = {}
    for key, value in timeout.items():
        result[key] = left if value is None or value > left else value
    for key in _TIMEOUT_KEYS:
        if key not in result:
            result[key] = left
    return result


class _Settings:
    """What both transports decide with: validated once, read on every request."""

    __slots__ = (
        "attempts",
        "backoff_delay",
        "breaker",
        "breakers",
        "budget",
        "clock",
        "deadline_header",
        "idempotency_keys",
        "limiter",
        "max_delay_hint",
        "max_elapsed",
        "name",
        "propagate_deadline",
        "retry",
        "retry_after",
        "retry_statuses",
        "unbounded",
    )

    def __init__(
        self,
        owner: str,
        retry: Retry | None,
        breaker: CircuitBreaker | None,
        breaker_factory: Callable[[str], CircuitBreaker] | None,
        max_hosts: int,
        limiter: RateLimiter | None,
        retry_statuses: Iterable[int],
        propagate_deadline: bool,
        deadline_header: str,
        idempotency_keys: bool,
    ) -> None:
        if retry is None:
            retry = Retry(on=httpx.TransportError, attempts=3)
        elif not isinstance(retry, Retry):
            raise TypeError(f"retry must be a resilient.Retry or None, got {retry!r}")
        self.retry = retry
        self.attempts = _UNLIMITED if retry.attempts_limit is None else retry.attempts_limit
        self.unbounded = retry.attempts_limit is None and retry.max_elapsed is None
        self.backoff_delay = retry.backoff.delay
        self.budget = retry.budget
        self.max_delay_hint = retry.max_delay_hint
        self.max_elapsed = retry.max_elapsed
        self.retry_after = retry.retry_after
        self.clock = retry._clock
        self.name = retry.name or owner
        if breaker is not None and not isinstance(breaker, CircuitBreaker):
            raise TypeError(f"breaker must be a resilient.CircuitBreaker or None, got {breaker!r}")
        if breaker_factory is not None and not callable(breaker_factory):
            raise TypeError(f"breaker_factory must be callable or None, got {breaker_factory!r}")
        if breaker is not None and breaker_factory is not None:
            raise ValueError(
                "breaker and breaker_factory cannot both be given: breaker= shares one breaker "
                "for every origin, breaker_factory= makes one per origin"
            )
        max_hosts = _check_int(max_hosts, "max_hosts", 1)
        self.breaker = breaker
        self.breakers = None if breaker_factory is None else _Breakers(breaker_factory, max_hosts)
        if limiter is not None and not isinstance(limiter, RateLimiter):
            raise TypeError(
                f"limiter must be a resilient.TokenBucket or SlidingWindow or None, got {limiter!r}"
            )
        self.limiter = limiter
        self.retry_statuses = _check_statuses(retry_statuses)
        if not isinstance(propagate_deadline, bool):
            raise TypeError(f"propagate_deadline must be a bool, got {propagate_deadline!r}")
        self.propagate_deadline = propagate_deadline
        if not isinstance(deadline_header, str):
            raise TypeError(f"deadline_header must be a str, got {deadline_header!r}")
        if not deadline_header or not set(deadline_header) <= _TOKEN_CHARS:
            raise ValueError(
                f"deadline_header must be a non-empty HTTP header name, got {deadline_header!r}"
            )
        self.deadline_header = deadline_header.lower()
        if not isinstance(idempotency_keys, bool):
            raise TypeError(f"idempotency_keys must be a bool, got {idempotency_keys!r}")
        self.idempotency_keys = idempotency_keys

    def breaker_for(self, request: httpx.Request) -> CircuitBreaker | None:
        """The breaker guarding ``request``'s origin, if any."""
        if self.breakers is not None:
            return self.breakers.get(origin_of(request.url))
        return self.breaker

    def begin(self, request: httpx.Request) -> tuple[bool, float]:
        """Before the first attempt: whether the request is idempotent, and the start time.

        Adds an ``Idempotency-Key`` when asked to, deposits in the retry budget and checks
        that unlimited attempts are bounded.
        """
        idempotent = self.idempotent(request)
        if self.unbounded and get_deadline() is None:
            raise ValueError(
                "the transport's Retry has attempts=None and no max_elapsed: send the request "
                "within a deadline (resilient.timeout) to bound the retries"
            )
        if self.budget is not None:
            self.budget.deposit()
        return idempotent, self.clock.monotonic() if self.max_elapsed is not None else 0.0

    def idempotent(self, request: httpx.Request) -> bool:
        """Whether ``request`` may be sent twice (adding a key first when asked to)."""
        method = request.method
        if method in IDEMPOTENT_METHODS:
            return True
        if "idempotency-key" in request.headers:
            return True
        if self.idempotency_keys and method in KEYED_METHODS:
            # An sf-string, as draft-ietf-httpapi-idempotency-key-header writes it.
            request.headers["Idempotency-Key"] = f'"{uuid.uuid4()}"'
            return True
        return False

    def prepare(self, request: httpx.Request, extensions: dict[str, Any]) -> None:
        """Before each attempt: fit the timeouts (and the header) to the deadline in scope.

        Raises `DeadlineExceeded` when no time is left. ``extensions`` are the request's own,
        as they were before the first attempt; each attempt gets a fresh copy.
        """
        deadline = get_deadline()
        if deadline is None:
            return
        left = deadline.remaining()
        if left <= 0.0:
            raise self.exceeded(deadline)
        fresh = dict(extensions)
        fresh["timeout"] = tightened(extensions.get("timeout"), left)
        request.extensions = fresh
        if self.propagate_deadline:
            request.headers[self.deadline_header] = format_grpc_timeout(left)

    def exceeded(self, deadline: Deadline) -> DeadlineExceeded:
        """The error for a request with no time left (and its event)."""
        if HUB.active:
            HUB.emit(DeadlineExceededEvent("timeout", self.name, deadline.timeout))
        message = "deadline exceeded before the request was sent"
        return DeadlineExceeded(message, timeout=deadline.timeout)

    def retry_response(self, response: httpx.Response, idempotent: bool, replayable: bool) -> bool:
        """Whether ``response`` asks for the request to be sent again."""
        return idempotent and replayable and response.status_code in self.retry_statuses

    def hint(self, response: httpx.Response) -> float | None:
        """The response's ``Retry-After``, capped by the retry's ``max_delay_hint``, or None."""
        if not self.retry_after:
            return None
        seconds = retry_after(response)
        if seconds is None or seconds <= 0.0:
            return None
        return seconds if seconds < self.max_delay_hint else self.max_delay_hint

    def decide(
        self,
        attempt: int,
        error: BaseException | None,
        previous: float | None,
        start: float,
        hint: float | None,
    ) -> float | None:
        """The delay before attempt ``attempt + 1``, or None to give up (with the events).

        The retry's attempts, ``max_elapsed`` and budget bound the retries; a delay that would
        end at or past the deadline in scope stops them instead.
        """
        reason = "attempts"
        if attempt < self.attempts:
            delay = hint if hint is not None else self.backoff_delay(attempt, previous)
            deadline = get_deadline()
            if (
                self.max_elapsed is not None
                and self.clock.monotonic() + delay - start > self.max_elapsed
            ):
                reason = "max_elapsed"
            elif deadline is not None and deadline.remaining() <= delay:
                reason = "deadline"
            else:
                budget = self.budget
                if budget is not None and not budget.try_withdraw():
                    if HUB.active:
                        HUB.emit(RetryBudgetExhaustedEvent("retry", self.name, attempt, error))
                    return None
                if HUB.active:
                    HUB.emit(RetryScheduled("retry", self.name, attempt, delay, error))
                return delay
        if HUB.active:
            HUB.emit(RetriesExhausted("retry", self.name, attempt, error, reason))
        return None


def _check_statuses(value: object) -> frozenset[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"retry_statuses must be an iterable of status codes, got {value!r}")
    statuses = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int):
            raise TypeError(f"retry_statuses must hold int status codes, got {item!r}")
        if not 100 <= item <= 599:
            raise ValueError(f"retry_statuses must hold status codes 100-599, got {item!r}")
        statuses.append(int(item))
    return frozenset(statuses)


class _Breakers:
    """One breaker per origin, made on first use; the least recently used beyond the bound go.

    The factory runs under the lock, so it is called once per origin even when threads race
    (it should only build a breaker).
    """

    __slots__ = ("_factory", "_items", "_lock", "max_hosts")

    def __init__(self, factory: Callable[[str], CircuitBreaker], max_hosts: int) -> None:
        self._factory = factory
        self.max_hosts = max_hosts
        self._items: OrderedDict[str, CircuitBreaker] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, origin: str) -> CircuitBreaker:
        with self._lock:
            items = self._items
            breaker = items.get(origin)
            if breaker is not None:
                items.move_to_end(origin)
                return breaker
            breaker = self._factory(origin)
            if not isinstance(breaker, CircuitBreaker):
                raise TypeError(
                    f"breaker_factory must return a resilient.CircuitBreaker, got {breaker!r} "
                    f"for {origin!r}"
                )
            items[origin] = breaker
            if len(items) > self.max_hosts:
                items.popitem(last=False)
            return breaker

    def __len__(self) -> int:
        return len(self._items)

    def origins(self) -> list[str]:
        """The origins that have a breaker now, least recently used first."""
        with self._lock:
            return list(self._items)


# The breaker is driven through its own permit and record steps, so that a response (not only
# an exception) can count: a 5xx is a failure, any other status a success.


def _breaker_enter(breaker: CircuitBreaker) -> tuple[Any, float | None]:
    backend = breaker._backend
    permit: Any = backend.closed
    start: float | None = None
    if permit is None or breaker._timed:
        start = breaker._monotonic()
        if permit is None:
            permit = backend.acquire(start)
            if permit.rejected:
                raise breaker._reject(permit)
    return permit, start


def _breaker_exit(
    breaker: CircuitBreaker,
    entry: tuple[Any, float | None],
    error: BaseException | None,
    status: int,
) -> None:
    permit, start = entry
    if error is not None:
        breaker._settle(permit, start, breaker._judge(error))
    else:
        breaker._finish(permit, FAILURE if status >= 500 else SUCCESS, start)


async def _abreaker_enter(breaker: CircuitBreaker) -> tuple[Any, float | None]:
    remote = breaker._remote
    if remote is None:
        return _breaker_enter(breaker)
    start = breaker._monotonic()
    permit: Any = await remote.aacquire(start)
    if permit.rejected:
        raise breaker._reject(permit)
    return permit, start


async def _abreaker_exit(
    breaker: CircuitBreaker,
    entry: tuple[Any, float | None],
    error: BaseException | None,
    status: int,
) -> None:
    remote = breaker._remote
    if remote is None:
        _breaker_exit(breaker, entry, error, status)
        return
    permit, start = entry
    judged = (
        breaker._judge(error)
        if error is not None
        else ((FAILURE if status >= 500 else SUCCESS), None)
    )
    await breaker._asettle(remote, permit, start or 0.0, judged)


def _check_transport(transport: object, expected: type, other: type, twin: str) -> None:
    if not isinstance(transport, expected):
        hint = f" (use {twin} for an {other.__name__})" if isinstance(transport, other) else ""
        raise TypeError(
            f"transport must be an httpx.{expected.__name__} or None, got {transport!r}{hint}"
        )


# -- the sync twin -------------------------------------------------------------------------------


class ResilientTransport(httpx.BaseTransport):
    """An httpx transport that retries, breaks circuits per origin and obeys the deadline.

    Wraps ``transport`` (default `httpx.HTTPTransport()`); pass it to
    ``httpx.Client(transport=...)``. Per request, in this order: the deadline in scope is
    checked (`DeadlineExceeded` when none is left) and the timeouts in
    ``extensions["timeout"]`` are lowered to the time left; the limiter grants one unit; the
    origin's breaker admits the attempt (else `CircuitOpenError`, without touching the network);
    the inner transport sends it. Failed attempts that may be retried (see docs/httpx.md) are
    sent again after the retry's backoff or the server's ``Retry-After``.

    Args:
        transport: the transport that really sends (any `httpx.BaseTransport`). Build it with
            the ``verify``, ``cert``, ``http2``, ``limits`` and ``proxy`` options you need: a
            client given ``transport=`` ignores its own.
        retry: a `resilient.Retry` whose ``attempts``, ``backoff``, ``budget``,
            ``max_elapsed``, ``retry_after``, ``max_delay_hint``, ``name`` and ``clock`` are
            used (its ``on`` and ``on_result`` are not: what may be retried is this transport's
            rule). None means ``Retry(on=httpx.TransportError, attempts=3)``;
            ``Retry(attempts=1)`` turns retries off.
        breaker: one `resilient.CircuitBreaker` shared by every origin.
        breaker_factory: ``(origin) -> CircuitBreaker``, called once per
            ``scheme://host:port`` (the alternative to ``breaker``).
        max_hosts: the most per-origin breakers kept (least recently used dropped).
        limiter: a `resilient.TokenBucket` or `resilient.SlidingWindow`; every attempt takes one
            unit of its global key, waiting up to the limiter's ``max_wait``.
        retry_statuses: statuses to retry for idempotent requests.
        propagate_deadline: send the time left in ``deadline_header`` (``grpc-timeout``
            format, rounded down to whole milliseconds).
        deadline_header: the header for ``propagate_deadline``.
        idempotency_keys: add a fresh ``Idempotency-Key`` to POST and PATCH requests that lack
            one, so that they may be retried (the server must honour the key).
        hedge: only None here; hedging is async only (see `AsyncResilientTransport`).

    Raises:
        TypeError: an argument has the wrong type (the message names it).
        ValueError: an argument is out of range.
    """

    __slots__ = ("_settings", "_transport")

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        retry: Retry | None = None,
        breaker: CircuitBreaker | None = None,
        breaker_factory: Callable[[str], CircuitBreaker] | None = None,
        max_hosts: int = 1024,
        limiter: RateLimiter | None = None,
        retry_statuses: Iterable[int] = (429, 502, 503, 504),
        propagate_deadline: bool = False,
        deadline_header: str = "grpc-timeout",
        idempotency_keys: bool = False,
        hedge: None = None,
    ) -> None:
        if hedge is not None:
            raise TypeError(
                f"hedge is async only, got {hedge!r}: a thread cannot be cancelled, so a losing "
                "attempt could not be stopped; use AsyncResilientTransport to hedge"
            )
        if transport is None:
            transport = httpx.HTTPTransport()
        _check_transport(
            transport, httpx.BaseTransport, httpx.AsyncBaseTransport, "AsyncResilientTransport"
        )
        self._transport = transport
        self._settings = _Settings(
            "ResilientTransport",
            retry,
            breaker,
            breaker_factory,
            max_hosts,
            limiter,
            retry_statuses,
            propagate_deadline,
            deadline_header,
            idempotency_keys,
        )

    @property
    def transport(self) -> httpx.BaseTransport:
        """The wrapped transport."""
        return self._transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the inner transport, retrying as the rules allow."""
        settings = self._settings
        send = self._transport.handle_request
        idempotent, start = settings.begin(request)
        replayable = isinstance(request.stream, httpx.ByteStream)
        extensions = request.extensions
        breaker = settings.breaker_for(request)
        limiter = settings.limiter
        attempt = 0
        previous: float | None = None
        while True:
            attempt += 1
            settings.prepare(request, extensions)
            if limiter is not None:
                limiter.acquire("", 1, limiter.max_wait)
                settings.prepare(request, extensions)  # the wait took time
            entry = None if breaker is None else _breaker_enter(breaker)
            try:
                response = send(request)
            except BaseException as exc:
                if entry is not None:
                    _breaker_exit(breaker, entry, exc, 0)  # type: ignore[arg-type]
                if not may_retry_error(exc, idempotent, replayable):
                    raise
                delay = settings.decide(attempt, exc, previous, start, None)
                if delay is None:
                    raise
            else:
                if entry is not None:
                    _breaker_exit(breaker, entry, None, response.status_code)  # type: ignore[arg-type]
                if not settings.retry_response(response, idempotent, replayable):
                    return response
                try:
                    delay = settings.decide(attempt, None, previous, start, settings.hint(response))
                except BaseException:
                    response.close()
                    raise
                if delay is None:
                    return response
                _drop(response)
            if delay > 0.0 and not switches.no_waiting:
                settings.clock.sleep(delay)
            previous = delay

    def __enter__(self) -> ResilientTransport:
        self._transport.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self._transport.__exit__(exc_type, exc_value, traceback)

    def close(self) -> None:
        """Close the inner transport."""
        self._transport.close()

    def __repr__(self) -> str:
        return f"ResilientTransport({self._transport!r})"


def _drop(response: httpx.Response) -> None:
    """Read up to `DRAIN_LIMIT` bytes of a response that will not be returned, then close it."""
    try:
        chunks = iter(response.stream)  # type: ignore[arg-type]
        try:
            read = 0
            for chunk in chunks:
                read += len(chunk)
                if read > DRAIN_LIMIT:
                    break
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:  # a generator left half-way: finish it now
                close()
    except Exception:  # the response is dropped anyway
        pass
    finally:
        response.close()


# -- the async twin ------------------------------------------------------------------------------


class AsyncResilientTransport(httpx.AsyncBaseTransport):
    """`ResilientTransport` for `httpx.AsyncClient`, on asyncio and trio.

    Wraps ``transport`` (default `httpx.AsyncHTTPTransport()`); the arguments and rules are
    those of `ResilientTransport`. Sleeps go through the retry's clock (anyio: asyncio and
    trio alike).

    ``hedge=Hedge(delay, max_hedged=n)`` hedges the requests that may be sent twice
    (idempotent, with a body held in memory): when one has not been answered after ``delay``
    seconds, another copy is sent, up to ``n`` more; the first response wins, the other
    attempts are cancelled and awaited, and responses that lost are closed. Each copy goes
    through the retries, the breaker and the limiter on its own. A `Hedge` without a name
    takes the transport's name in its `HedgeStarted` events.

    Raises:
        TypeError: an argument has the wrong type (the message names it).
        ValueError: an argument is out of range.
    """

    __slots__ = ("_hedge", "_settings", "_transport")

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        retry: Retry | None = None,
        breaker: CircuitBreaker | None = None,
        breaker_factory: Callable[[str], CircuitBreaker] | None = None,
        max_hosts: int = 1024,
        limiter: RateLimiter | None = None,
        retry_statuses: Iterable[int] = (429, 502, 503, 504),
        propagate_deadline: bool = False,
        deadline_header: str = "grpc-timeout",
        idempotency_keys: bool = False,
        hedge: Hedge | None = None,
    ) -> None:
        if transport is None:
            transport = httpx.AsyncHTTPTransport()
        _check_transport(
            transport, httpx.AsyncBaseTransport, httpx.BaseTransport, "ResilientTransport"
        )
        self._transport = transport
        self._settings = _Settings(
            "AsyncResilientTransport",
            retry,
            breaker,
            breaker_factory,
            max_hosts,
            limiter,
            retry_statuses,
            propagate_deadline,
            deadline_header,
            idempotency_keys,
        )
        if hedge is not None:
            if not isinstance(hedge, Hedge):
                raise TypeError(f"hedge must be a resilient.Hedge or None, got {hedge!r}")
            if hedge.name is None:
                hedge = Hedge(
                    hedge.delay,
                    max_hedged=hedge.max_hedged,
                    name=self._settings.name,
                    clock=hedge._clock,
                )
        self._hedge = hedge

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        """The wrapped transport."""
        return self._transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the inner transport, retrying (and hedging) as configured."""
        hedge = self._hedge
        if (
            hedge is not None
            and isinstance(request.stream, httpx.ByteStream)
            and self._settings.idempotent(request)
        ):
            return await self._hedged(hedge, request)
        return await self._send(request)

    async def _hedged(self, hedge: Hedge, request: httpx.Request) -> httpx.Response:
        """Race copies of ``request`` under ``hedge``; close every response that lost."""
        responses: list[httpx.Response] = []

        async def attempt() -> httpx.Response:
            copy = httpx.Request(
                request.method,
                request.url,
                headers=request.headers,
                stream=request.stream,
                extensions=dict(request.extensions),
            )
            response = await self._send(copy)
            responses.append(response)
            return response

        winner = None
        try:
            winner = await hedge.acall(attempt)
        finally:
            for response in responses:
                if response is not winner:
                    await response.aclose()
        return winner

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """The retry loop of one request (or of one hedged copy)."""
        settings = self._settings
        send = self._transport.handle_async_request
        idempotent, start = settings.begin(request)
        replayable = isinstance(request.stream, httpx.ByteStream)
        extensions = request.extensions
        breaker = settings.breaker_for(request)
        limiter = settings.limiter
        attempt = 0
        previous: float | None = None
        while True:
            attempt += 1
            settings.prepare(request, extensions)
            if limiter is not None:
                await limiter.aacquire("", 1, limiter.max_wait)
                settings.prepare(request, extensions)  # the wait took time
            entry = None if breaker is None else await _abreaker_enter(breaker)
            try:
                response = await send(request)
            except BaseException as exc:
                if entry is not None:
                    await _abreaker_exit(breaker, entry, exc, 0)  # type: ignore[arg-type]
                if not may_retry_error(exc, idempotent, replayable):
                    raise
                delay = settings.decide(attempt, exc, previous, start, None)
                if delay is None:
                    raise
            else:
                if entry is not None:
                    await _abreaker_exit(breaker, entry, None, response.status_code)  # type: ignore[arg-type]
                if not settings.retry_response(response, idempotent, replayable):
                    return response
                try:
                    delay = settings.decide(attempt, None, previous, start, settings.hint(response))
                except BaseException:
                    await response.aclose()
                    raise
                if delay is None:
                    return response
                await _adrop(response)
            if delay > 0.0 and not switches.no_waiting:
                await settings.clock.asleep(delay)
            previous = delay

    async def __aenter__(self) -> AsyncResilientTransport:
        await self._transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self._transport.__aexit__(exc_type, exc_value, traceback)

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._transport.aclose()

    def __repr__(self) -> str:
        return f"AsyncResilientTransport({self._transport!r})"


async def _adrop(response: httpx.Response) -> None:
    """Async `_drop`."""
    try:
        chunks = response.stream.__aiter__()  # type: ignore[union-attr]
        try:
            read = 0
            async for chunk in chunks:
                read += len(chunk)
                if read > DRAIN_LIMIT:
                    break
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:  # an async generator left half-way: trio insists
                await aclose()
    except Exception:  # the response is dropped anyway
        pass
    finally:
        await response.aclose()
