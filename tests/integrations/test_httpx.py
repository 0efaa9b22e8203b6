"""The httpx transports: what is retried, Retry-After, breakers per origin, deadlines.

Every behaviour runs three ways: `ResilientTransport` under `httpx.Client`, and
`AsyncResilientTransport` under `httpx.AsyncClient` on asyncio and on trio. The upstream is an
`httpx.MockTransport` whose handler follows a script, except where a real socket is needed
(a refused connection, a real server's responses), which uses uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import resilient
from resilient import (
    Backoff,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    DeadlineExceeded,
    Hedge,
    RateLimitedError,
    Retry,
    RetryBudget,
    TokenBucket,
)
from resilient.instrumentation import subscribe, unsubscribe
from resilient.integrations import httpx as transports
from resilient.integrations.httpx import AsyncResilientTransport, ResilientTransport
from resilient.stores import RedisStore
from resilient.testing import FakeClock, no_waiting

from ._httpx_servers import Server, closed_port

URL = "https://api.test/items"
MODES = ["sync", "asyncio", "trio"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """``sync``: Client + ResilientTransport; else AsyncClient + AsyncResilientTransport."""
    return str(request.param)


# -- the scripted upstream -----------------------------------------------------------------------


class Tracked(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that records whether it was read and closed."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.yielded = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.yielded += 1
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.yielded += 1
            yield chunk

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


class Seen:
    """What the upstream saw of one attempt."""

    def __init__(self, request: httpx.Request) -> None:
        self.method = request.method
        self.host = request.url.host
        self.headers = dict(request.headers)
        self.extensions = request.extensions
        self.timeout = dict(request.extensions.get("timeout", {}))


Step = int | tuple[int, dict[str, str]] | type[Exception]


class Upstream:
    """A MockTransport handler answering each attempt with the next step of a script.

    A step is a status, a (status, headers) pair, or an httpx exception type to raise; the last
    step repeats. ``by_host`` gives some hosts scripts of their own.
    """

    def __init__(self, *script: Step, by_host: dict[str, list[Step]] | None = None) -> None:
        self.script = list(script) or [200]
        self.by_host = by_host or {}
        self.seen: list[Seen] = []
        self.streams: list[Tracked] = []
        self.chunks = [b"body"]

    def attempts(self, host: str | None = None) -> int:
        return sum(1 for s in self.seen if host is None or s.host == host)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        script = self.by_host.get(request.url.host, self.script)
        index = self.attempts(request.url.host)
        self.seen.append(Seen(request))
        step = script[min(index, len(script) - 1)]
        if isinstance(step, type):
            if issubclass(step, httpx.RequestError):
                raise step("scripted failure", request=request)
            raise step("scripted failure")
        status, headers = (step, {}) if isinstance(step, int) else step
        stream = Tracked(list(self.chunks))
        self.streams.append(stream)
        return httpx.Response(status, headers=headers, stream=stream)


class Session:
    """One resilient transport in one mode; each `request` goes through a fresh client."""

    def __init__(self, mode: str, inner: Any, **options: Any) -> None:
        self.mode = mode
        if isinstance(inner, Upstream):
            self.upstream: Upstream | None = inner
            inner = httpx.MockTransport(inner)
        self.transport: Any = (
            ResilientTransport(inner, **options)
            if mode == "sync"
            else AsyncResilientTransport(inner, **options)
        )

    def request(
        self,
        method: str = "GET",
        url: str = URL,
        *,
        deadline: float | None = None,
        clock: FakeClock | None = None,
        before: Callable[[], object] | None = None,
        chunks: list[bytes] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request (within ``resilient.timeout(deadline, clock=clock)`` if given)."""
        if self.mode == "sync":
            if chunks is not None:
                kwargs["content"] = iter(chunks)
            client = httpx.Client(transport=self.transport)
            if deadline is None:
                return client.request(method, url, **kwargs)
            with resilient.timeout(deadline, clock=clock):
                if before is not None:
                    before()
                return client.request(method, url, **kwargs)

        async def main() -> httpx.Response:
            if chunks is not None:

                async def body() -> AsyncIterator[bytes]:
                    for chunk in chunks:
                        yield chunk

                kwargs["content"] = body()
            client = httpx.AsyncClient(transport=self.transport)
            if deadline is None:
                return await client.request(method, url, **kwargs)
            async with resilient.timeout(deadline, clock=clock):
                if before is not None:
                    before()
                return await client.request(method, url, **kwargs)

        return anyio.run(main, backend=self.mode)

    def send(self, request: httpx.Request) -> httpx.Response:
        """Send a request built by the caller (to inspect it afterwards)."""
        if self.mode == "sync":
            return httpx.Client(transport=self.transport).send(request)

        async def main() -> httpx.Response:
            return await httpx.AsyncClient(transport=self.transport).send(request)

        return anyio.run(main, backend=self.mode)


def quick(attempts: int = 3, delay: float = 0.25, **options: Any) -> tuple[Retry, FakeClock]:
    """A Retry with a constant backoff on a FakeClock (no real sleeping), and that clock."""
    clock = FakeClock()
    return Retry(
        attempts=attempts, backoff=Backoff.constant(delay, jitter="none"), clock=clock, **options
    ), clock


# -- retry counts ---------------------------------------------------------------------------------


def test_a_503_is_retried_until_a_success(mode: str) -> None:
    retry, clock = quick()
    session = Session(mode, Upstream(503, 503, 200), retry=retry)
    assert session.request().status_code == 200
    assert session.upstream is not None
    assert session.upstream.attempts() == 3
    assert clock.sleeps == [0.25, 0.25]


def test_the_last_response_is_returned_when_attempts_run_out(mode: str) -> None:
    retry, _ = quick(attempts=4)
    upstream = Upstream(502)
    response = Session(mode, upstream, retry=retry).request()
    assert response.status_code == 502
    assert upstream.attempts() == 4
    assert response.content == b"body"  # the returned one is left for the client to read


def test_every_retry_status_is_retried_and_others_are_not(mode: str) -> None:
    for status in (429, 502, 503, 504):
        retry, _ = quick()
        upstream = Upstream(status, 200)
        assert Session(mode, upstream, retry=retry).request().status_code == 200
        assert upstream.attempts() == 2
    for status in (400, 404, 500, 501):
        retry, _ = quick()
        upstream = Upstream(status, 200)
        assert Session(mode, upstream, retry=retry).request().status_code == status
        assert upstream.attempts() == 1


def test_retry_statuses_can_be_chosen(mode: str) -> None:
    retry, _ = quick()
    upstream = Upstream(500, 200)
    session = Session(mode, upstream, retry=retry, retry_statuses=[500])
    assert session.request().status_code == 200
    assert upstream.attempts() == 2


def test_attempts_1_turns_retries_off(mode: str) -> None:
    retry, clock = quick(attempts=1)
    upstream = Upstream(503, 200)
    assert Session(mode, upstream, retry=retry).request().status_code == 503
    assert upstream.attempts() == 1
    assert clock.sleeps == []


def test_the_default_retry_makes_three_attempts(mode: str) -> None:
    upstream = Upstream(httpx.ReadError)
    with no_waiting(), pytest.raises(httpx.ReadError):
        Session(mode, upstream).request()
    assert upstream.attempts() == 3


def test_transport_errors_on_get_are_retried_and_the_last_one_raised(mode: str) -> None:
    retry, _ = quick()
    upstream = Upstream(httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.WriteError)
    with pytest.raises(httpx.WriteError):
        Session(mode, upstream, retry=retry).request()
    assert upstream.attempts() == 3

    retry, _ = quick()
    upstream = Upstream(httpx.ReadError, 200)
    assert Session(mode, upstream, retry=retry).request("DELETE").status_code == 200
    assert upstream.attempts() == 2


def test_errors_the_same_request_would_raise_again_are_not_retried(mode: str) -> None:
    for error in (httpx.UnsupportedProtocol, httpx.LocalProtocolError):
        retry, _ = quick()
        upstream = Upstream(error, 200)
        with pytest.raises(error):
            Session(mode, upstream, retry=retry).request()
        assert upstream.attempts() == 1


def test_a_retry_budget_bounds_the_retries(mode: str) -> None:
    budget = RetryBudget(ratio=0.0, minimum_per_second=0.0, clock=FakeClock())
    retry, _ = quick(budget=budget)
    upstream = Upstream(503, 200)
    assert Session(mode, upstream, retry=retry).request().status_code == 503
    assert upstream.attempts() == 1


def test_retry_events_are_named_after_the_transport(mode: str) -> None:
    events: list[Any] = []
    subscribe(events.append)
    try:
        retry, _ = quick(attempts=2)
        Session(mode, Upstream(503), retry=retry).request()
    finally:
        unsubscribe(events.append)
    name = "ResilientTransport" if mode == "sync" else "AsyncResilientTransport"
    kinds = [(type(e).__name__, e.policy, e.name) for e in events]
    assert kinds == [("RetryScheduled", "retry", name), ("RetriesExhausted", "retry", name)]
    assert (events[0].attempt, events[0].delay) == (1, 0.25)
    assert events[1].reason == "attempts"


def test_a_named_retry_names_the_events(mode: str) -> None:
    events: list[Any] = []
    subscribe(events.append)
    try:
        retry, _ = quick(attempts=2, name="payments-api")
        Session(mode, Upstream(503), retry=retry).request()
    finally:
        unsubscribe(events.append)
    assert {e.name for e in events} == {"payments-api"}


# -- Retry-After ----------------------------------------------------------------------------------


def test_retry_after_in_seconds_replaces_the_backoff(mode: str) -> None:
    retry, clock = quick()
    upstream = Upstream((429, {"Retry-After": "7"}), 200)
    assert Session(mode, upstream, retry=retry).request().status_code == 200
    assert clock.sleeps == [7.0]


def test_retry_after_as_an_http_date_is_measured_from_the_response_date(mode: str) -> None:
    retry, clock = quick()
    headers = {
        "Date": "Thu, 03 Dec 2026 11:00:00 GMT",
        "Retry-After": "Thu, 03 Dec 2026 11:00:30 GMT",
    }
    upstream = Upstream((503, headers), 200)
    assert Session(mode, upstream, retry=retry).request().status_code == 200
    assert clock.sleeps == [30.0]


def test_retry_after_is_capped_by_max_delay_hint(mode: str) -> None:
    retry, clock = quick(max_delay_hint=5.0)
    upstream = Upstream((503, {"Retry-After": "Fri, 31 Dec 2099 23:59:59 GMT"}), 200)
    assert Session(mode, upstream, retry=retry).request().status_code == 200
    assert clock.sleeps == [5.0]


def test_malformed_or_past_retry_after_falls_back_to_the_backoff(mode: str) -> None:
    for value in ("soon", "-3", "1.5", "Thu, 01 Jan 1970 00:00:00 GMT", "0"):
        retry, clock = quick()
        upstream = Upstream((503, {"Retry-After": value}), 200)
        assert Session(mode, upstream, retry=retry).request().status_code == 200
        assert clock.sleeps == [0.25], value


def test_retry_after_is_ignored_when_the_retry_says_so(mode: str) -> None:
    retry, clock = quick(retry_after=False)
    Session(mode, Upstream((503, {"Retry-After": "7"}), 200), retry=retry).request()
    assert clock.sleeps == [0.25]


def test_a_retry_after_past_the_deadline_stops_instead_of_sleeping(mode: str) -> None:
    retry, clock = quick()
    events: list[Any] = []
    subscribe(events.append)
    try:
        upstream = Upstream((503, {"Retry-After": "10"}), 200)
        response = Session(mode, upstream, retry=retry).request(deadline=5.0, clock=clock)
    finally:
        unsubscribe(events.append)
    assert response.status_code == 503
    assert upstream.attempts() == 1
    assert clock.sleeps == []
    assert [e.reason for e in events if type(e).__name__ == "RetriesExhausted"] == ["deadline"]


# -- what may be retried, by method and body -----------------------------------------------------


def test_post_is_not_retried_after_it_was_sent(mode: str) -> None:
    retry, _ = quick()
    upstream = Upstream(503, 200)
    assert Session(mode, upstream, retry=retry).request("POST", json={}).status_code == 503
    assert upstream.attempts() == 1

    retry, _ = quick()
    upstream = Upstream(httpx.ReadError, 200)
    with pytest.raises(httpx.ReadError):
        Session(mode, upstream, retry=retry).request("PATCH", content=b"x")
    assert upstream.attempts() == 1


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
def test_post_is_retried_after_an_error_raised_before_it_left(
    mode: str, error: type[Exception]
) -> None:
    retry, _ = quick()
    upstream = Upstream(error, 200)
    assert Session(mode, upstream, retry=retry).request("POST", json={"a": 1}).status_code == 200
    assert upstream.attempts() == 2


def test_post_with_an_idempotency_key_is_retried(mode: str) -> None:
    retry, _ = quick()
    upstream = Upstream(503, httpx.ReadError, 200)
    response = Session(mode, upstream, retry=retry).request(
        "POST", json={}, headers={"Idempotency-Key": "order-17"}
    )
    assert response.status_code == 200
    assert [s.headers["idempotency-key"] for s in upstream.seen] == ["order-17"] * 3


def test_idempotency_keys_adds_one_fresh_key_per_request_and_allows_retries(mode: str) -> None:
    retry, _ = quick()
    upstream = Upstream(503, 200, 503, 200)
    session = Session(mode, upstream, retry=retry, idempotency_keys=True)
    assert session.request("POST", json={}).status_code == 200
    assert session.request("PATCH", json={}).status_code == 200
    keys = [s.headers["idempotency-key"] for s in upstream.seen]
    assert len(keys) == 4
    assert keys[0] == keys[1]
    assert keys[2] == keys[3]
    assert keys[0] != keys[2]
    assert re.fullmatch(r'"[0-9a-f-]{36}"', keys[0])


def test_idempotency_keys_keeps_a_callers_key_and_leaves_other_methods_alone(mode: str) -> None:
    upstream = Upstream(200)
    session = Session(mode, upstream, idempotency_keys=True)
    session.request("POST", headers={"Idempotency-Key": "mine"})
    session.request("GET")
    session.request("PUT")
    assert upstream.seen[0].headers["idempotency-key"] == "mine"
    assert "idempotency-key" not in upstream.seen[1].headers
    assert "idempotency-key" not in upstream.seen[2].headers


def test_no_idempotency_key_is_added_unless_asked(mode: str) -> None:
    upstream = Upstream(200)
    Session(mode, upstream).request("POST", json={})
    assert "idempotency-key" not in upstream.seen[0].headers


def test_a_streamed_body_is_sent_once(mode: str) -> None:
    retry, _ = quick()
    upstream = Upstream(503, 200)
    response = Session(mode, upstream, retry=retry).request("PUT", chunks=[b"a", b"b"])
    assert response.status_code == 503
    assert upstream.attempts() == 1

    retry, _ = quick()
    upstream = Upstream(httpx.ConnectError, 200)
    with pytest.raises(httpx.ConnectError):
        Session(mode, upstream, retry=retry).request("PUT", chunks=[b"a"])
    assert upstream.attempts() == 1


def test_bodies_given_as_bytes_are_replayed(mode: str) -> None:
    retry, _ = quick()
    upstream = Upstream(503, 200)
    response = Session(mode, upstream, retry=retry).request("PUT", content=b"payload")
    assert response.status_code == 200
    assert upstream.attempts() == 2


def test_cancellation_and_other_exceptions_are_not_retried(mode: str) -> None:
    retry, _ = quick()
    upstream = Upstream(ValueError, 200)  # a bug in the inner transport, say
    with pytest.raises(ValueError, match="scripted"):
        Session(mode, upstream, retry=retry).request()
    assert upstream.attempts() == 1


# -- dropped responses ----------------------------------------------------------------------------


def test_responses_dropped_for_a_retry_are_read_and_closed(mode: str) -> None:
    retry, _ = quick()
    upstream = Upstream(503, 503, 200)
    response = Session(mode, upstream, retry=retry).request()
    first, second, last = upstream.streams
    assert (first.closed, first.yielded) == (True, 1)
    assert (second.closed, second.yielded) == (True, 1)
    assert response.status_code == 200
    assert last.yielded == 1  # read by the client


def test_a_large_dropped_response_is_read_only_up_to_the_cap(mode: str) -> None:
    retry, _ = quick()
    upstream = Upstream(503, 200)
    chunk = b"x" * 4096
    upstream.chunks = [chunk] * 1000  # 4 MB
    Session(mode, upstream, retry=retry).request()
    dropped = upstream.streams[0]
    assert dropped.closed
    assert dropped.yielded == transports.DRAIN_LIMIT // len(chunk) + 1


def test_a_returned_response_can_still_be_streamed(mode: str) -> None:
    retry, _ = quick()
    upstream = Upstream(200)
    transport: Any
    if mode == "sync":
        transport = ResilientTransport(httpx.MockTransport(upstream), retry=retry)
        with httpx.Client(transport=transport) as client, client.stream("GET", URL) as response:
            assert upstream.streams[0].yielded == 0  # the transport did not read it
            assert response.read() == b"body"
        return

    async def main() -> None:
        transport = AsyncResilientTransport(httpx.MockTransport(upstream), retry=retry)
        async with (
            httpx.AsyncClient(transport=transport) as client,
            client.stream("GET", URL) as response,
        ):
            assert upstream.streams[0].yielded == 0
            assert await response.aread() == b"body"

    anyio.run(main, backend=mode)


# -- breakers per origin --------------------------------------------------------------------------


def _factory(made: list[str], clock: FakeClock) -> Callable[[str], CircuitBreaker]:
    def make(origin: str) -> CircuitBreaker:
        made.append(origin)
        return CircuitBreaker(
            origin, failure_rate=None, consecutive_failures=2, open_for=30.0, clock=clock
        )

    return make


def test_one_breaker_per_origin_and_only_that_origin_is_rejected(mode: str) -> None:
    retry, clock = quick(attempts=1)
    made: list[str] = []
    upstream = Upstream(200, by_host={"down.test": [500]})
    session = Session(mode, upstream, retry=retry, breaker_factory=_factory(made, clock))
    assert session.request(url="https://down.test/a").status_code == 500
    assert session.request(url="https://down.test/b").status_code == 500
    with pytest.raises(CircuitOpenError) as caught:
        session.request(url="https://down.test/c")
    assert caught.value.name == "https://down.test:443"
    assert upstream.attempts("down.test") == 2  # the rejection did not touch the network
    assert session.request(url="https://up.test/").status_code == 200
    assert session.request(url="http://up.test:8080/").status_code == 200
    assert made == ["https://down.test:443", "https://up.test:443", "http://up.test:8080"]


def test_transport_errors_count_as_failures_and_4xx_do_not(mode: str) -> None:
    retry, clock = quick(attempts=1)
    made: list[str] = []
    upstream = Upstream(404, 404, 404, 200, by_host={"flaky.test": [httpx.ReadError]})
    session = Session(mode, upstream, retry=retry, breaker_factory=_factory(made, clock))
    for _ in range(3):
        assert session.request().status_code == 404
    assert session.request().status_code == 200  # three 4xx in a row did not open it
    for _ in range(2):
        with pytest.raises(httpx.ReadError):
            session.request(url="https://flaky.test/")
    with pytest.raises(CircuitOpenError):
        session.request(url="https://flaky.test/")


def test_every_attempt_counts_in_the_breaker(mode: str) -> None:
    retry, clock = quick(attempts=5)
    made: list[str] = []
    upstream = Upstream(503)
    session = Session(mode, upstream, retry=retry, breaker_factory=_factory(made, clock))
    with pytest.raises(CircuitOpenError):
        session.request()  # attempts 1 and 2 fail and open the circuit; attempt 3 is refused
    assert upstream.attempts() == 2
    assert [s.closed for s in upstream.streams] == [True, True]


def test_a_shared_breaker_guards_every_origin(mode: str) -> None:
    retry, clock = quick(attempts=1)
    breaker = CircuitBreaker("api", failure_rate=None, consecutive_failures=1, clock=clock)
    upstream = Upstream(200, by_host={"down.test": [503]})
    session = Session(mode, upstream, retry=retry, breaker=breaker)
    session.request(url="https://down.test/")
    with pytest.raises(CircuitOpenError):
        session.request(url="https://up.test/")
    assert upstream.attempts("up.test") == 0


def test_the_breakers_are_an_lru_of_max_hosts(mode: str) -> None:
    retry, clock = quick(attempts=1)
    made: list[str] = []
    upstream = Upstream(200, by_host={"a.test": [500, 500, 200]})
    session = Session(
        mode, upstream, retry=retry, breaker_factory=_factory(made, clock), max_hosts=2
    )
    session.request(url="https://a.test/")
    session.request(url="https://a.test/")
    with pytest.raises(CircuitOpenError):
        session.request(url="https://a.test/")
    session.request(url="https://b.test/")
    session.request(url="https://c.test/")  # a.test is the least recently used: dropped
    breakers = session.transport._settings.breakers
    assert len(breakers) == 2
    assert breakers.origins() == ["https://b.test:443", "https://c.test:443"]
    assert session.request(url="https://a.test/").status_code == 200  # a fresh breaker
    assert made == [f"https://{host}.test:443" for host in "abca"]
    session.request(url="https://c.test/")  # recently used: kept, not made again
    assert breakers.origins() == ["https://a.test:443", "https://c.test:443"]
    assert len(made) == 4


def test_one_transport_shared_by_threads_makes_one_breaker_per_origin() -> None:
    made: list[str] = []
    transport = ResilientTransport(
        httpx.MockTransport(Upstream(200)), breaker_factory=_factory(made, FakeClock())
    )

    def work() -> None:
        client = httpx.Client(transport=transport)
        for i in range(40):
            assert client.get(f"https://h{i % 4}.test/").status_code == 200

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(made) == [f"https://h{i}.test:443" for i in range(4)]


def test_a_breaker_shared_through_redis_counts_the_sync_transports_attempts(
    redis_client: Any,
) -> None:
    breaker = CircuitBreaker(
        "httpx-sync", failure_rate=None, consecutive_failures=2, store=RedisStore(redis_client)
    )
    upstream = Upstream(503)
    session = Session("sync", upstream, retry=Retry(attempts=1), breaker=breaker)
    session.request()
    session.request()
    with pytest.raises(CircuitOpenError):
        session.request()
    assert upstream.attempts() == 2


async def test_a_breaker_shared_through_redis_counts_the_async_transports_attempts(
    async_redis_client: Any,
) -> None:
    breaker = CircuitBreaker(
        "httpx-async",
        failure_rate=None,
        consecutive_failures=2,
        store=RedisStore(async_redis_client),
    )
    upstream = Upstream(503, 503, 200)
    transport = AsyncResilientTransport(
        httpx.MockTransport(upstream), retry=Retry(attempts=1), breaker=breaker
    )
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get(URL)).status_code == 503
        assert (await client.get(URL)).status_code == 503
        with pytest.raises(CircuitOpenError):
            await client.get(URL)
    assert upstream.attempts() == 2
    assert (await breaker.ametrics()).state == CircuitState.OPEN


# -- limiter --------------------------------------------------------------------------------------


def test_every_attempt_takes_a_unit_of_the_limiter(mode: str) -> None:
    retry, clock = quick(attempts=5)
    limiter = TokenBucket(rate=0.001, capacity=3, clock=clock)
    upstream = Upstream(503)
    with pytest.raises(RateLimitedError):
        Session(mode, upstream, retry=retry, limiter=limiter).request()
    assert upstream.attempts() == 3


# -- deadlines ------------------------------------------------------------------------------------


def test_no_time_left_raises_before_sending(mode: str) -> None:
    retry, clock = quick()
    upstream = Upstream(200)
    session = Session(mode, upstream, retry=retry)
    events: list[Any] = []
    subscribe(events.append)
    try:
        with pytest.raises(DeadlineExceeded):
            session.request(deadline=1.0, clock=clock, before=lambda: clock.advance(2.0))
    finally:
        unsubscribe(events.append)
    assert upstream.attempts() == 0
    name = "ResilientTransport" if mode == "sync" else "AsyncResilientTransport"
    assert ("DeadlineExceededEvent", "timeout", name) in [
        (type(e).__name__, e.policy, e.name) for e in events
    ]


def test_timeouts_are_tightened_to_the_deadline_in_a_fresh_dict_per_attempt(mode: str) -> None:
    retry, clock = quick(delay=0.5)
    upstream = Upstream(503, 200)
    session = Session(mode, upstream, retry=retry)
    timeout = httpx.Timeout(10.0, connect=0.75, pool=None)
    request = httpx.Request("GET", URL, extensions={"timeout": timeout.as_dict()})
    original = request.extensions
    if mode == "sync":
        with resilient.timeout(2.0, clock=clock):
            assert session.send(request).status_code == 200
    else:

        async def main() -> None:
            async with resilient.timeout(2.0, clock=clock):
                await httpx.AsyncClient(transport=session.transport).send(request)

        anyio.run(main, backend=mode)
    first, second = upstream.seen
    assert first.timeout == {"connect": 0.75, "read": 2.0, "write": 2.0, "pool": 2.0}
    assert second.timeout == {"connect": 0.75, "read": 1.5, "write": 1.5, "pool": 1.5}
    assert first.extensions is not second.extensions
    assert original is not first.extensions
    assert original["timeout"] == timeout.as_dict()  # never edited in place


def test_timeouts_are_untouched_without_a_deadline(mode: str) -> None:
    upstream = Upstream(200)
    Session(mode, upstream).request(timeout=httpx.Timeout(7.0))
    assert upstream.seen[0].timeout == {"connect": 7.0, "read": 7.0, "write": 7.0, "pool": 7.0}


def test_the_deadline_header_is_sent_only_when_asked(mode: str) -> None:
    clock = FakeClock()
    upstream = Upstream(200)
    Session(mode, upstream).request(deadline=2.0, clock=clock)
    Session(mode, upstream, propagate_deadline=True).request()
    assert "grpc-timeout" not in upstream.seen[0].headers
    assert "grpc-timeout" not in upstream.seen[1].headers

    Session(mode, upstream, propagate_deadline=True).request(deadline=2.0, clock=clock)
    assert upstream.seen[2].headers["grpc-timeout"] == "2000m"


def test_the_deadline_header_shrinks_from_attempt_to_attempt(mode: str) -> None:
    retry, clock = quick(delay=0.5)
    upstream = Upstream(503, 503, 200)
    session = Session(mode, upstream, retry=retry, propagate_deadline=True)
    session.request(deadline=1.2345678, clock=clock)
    assert [s.headers["grpc-timeout"] for s in upstream.seen] == ["1234m", "734m", "234m"]


def test_the_deadline_header_name_can_be_chosen(mode: str) -> None:
    upstream = Upstream(200)
    session = Session(mode, upstream, propagate_deadline=True, deadline_header="X-Deadline")
    session.request(deadline=0.25, clock=FakeClock())
    assert upstream.seen[0].headers["x-deadline"] == "250m"
    assert "grpc-timeout" not in upstream.seen[0].headers


def test_retries_never_sleep_past_the_deadline(mode: str) -> None:
    retry, clock = quick(attempts=10, delay=0.4)
    upstream = Upstream(httpx.ReadError)
    with pytest.raises(httpx.ReadError):
        Session(mode, upstream, retry=retry).request(deadline=1.0, clock=clock)
    assert clock.sleeps == [0.4, 0.4]  # a third sleep would end at 1.2
    assert upstream.attempts() == 3


# -- real servers ---------------------------------------------------------------------------------


class Counting(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Counts the attempts that reach a real transport."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return self.inner.handle_request(request)  # type: ignore[no-any-return]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return await self.inner.handle_async_request(request)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()


def _real(mode: str) -> Counting:
    return Counting(httpx.HTTPTransport() if mode == "sync" else httpx.AsyncHTTPTransport())


def test_post_to_a_closed_port_is_retried_on_connect_errors(mode: str) -> None:
    retry, clock = quick()
    inner = _real(mode)
    session = Session(mode, inner, retry=retry)
    with pytest.raises(httpx.ConnectError):
        session.request("POST", f"http://127.0.0.1:{closed_port()}/", json={"order": 1})
    assert inner.calls == 3
    assert clock.sleeps == [0.25, 0.25]


def test_a_real_server_503_is_drained_and_retried(mode: str) -> None:
    hits: list[str] = []

    async def endpoint(request: Request) -> PlainTextResponse:
        hits.append(request.method)
        if len(hits) < 3:
            return PlainTextResponse("busy" * 1000, status_code=503, headers={"Retry-After": "1"})
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", endpoint, methods=["GET", "POST"])])
    retry, clock = quick()
    with Server(app) as server:
        if mode == "sync":
            with httpx.Client(transport=ResilientTransport(retry=retry)) as client:
                first = client.get(server.url)
                second = client.post(server.url)
        else:

            async def main() -> tuple[httpx.Response, httpx.Response]:
                transport = AsyncResilientTransport(retry=retry)
                async with httpx.AsyncClient(transport=transport) as client:
                    return await client.get(server.url), await client.post(server.url)

            first, second = anyio.run(main, backend=mode)
    assert (first.status_code, first.text) == (200, "ok")
    assert second.status_code == 200
    assert hits == ["GET", "GET", "GET", "POST"]
    assert clock.sleeps == [1.0, 1.0]


# -- enter, exit and close ------------------------------------------------------------------------


class Lifecycle(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Records the lifecycle calls a wrapper forwards."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __enter__(self) -> Lifecycle:
        self.calls.append("enter")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.calls.append("exit")

    async def __aenter__(self) -> Lifecycle:
        self.calls.append("aenter")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.calls.append("aexit")

    def close(self) -> None:
        self.calls.append("close")

    async def aclose(self) -> None:
        self.calls.append("aclose")


def test_enter_exit_and_close_are_forwarded_sync() -> None:
    inner = Lifecycle()
    transport = ResilientTransport(inner)
    assert transport.transport is inner
    with httpx.Client(transport=transport):
        pass
    transport.close()
    with transport as entered:
        assert entered is transport
    assert inner.calls == ["enter", "exit", "close", "enter", "exit"]


async def test_enter_exit_and_close_are_forwarded_async() -> None:
    inner = Lifecycle()
    transport = AsyncResilientTransport(inner)
    assert transport.transport is inner
    async with httpx.AsyncClient(transport=transport):
        pass
    await transport.aclose()
    async with transport as entered:
        assert entered is transport
    assert inner.calls == ["aenter", "aexit", "aclose", "aenter", "aexit"]


def test_the_default_inner_transports_are_httpx_own() -> None:
    sync = ResilientTransport()
    assert type(sync.transport) is httpx.HTTPTransport
    sync.close()
    assert type(AsyncResilientTransport().transport) is httpx.AsyncHTTPTransport


# -- arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "argument"),
    [
        ({"transport": object()}, TypeError, "transport"),
        ({"retry": 3}, TypeError, "retry"),
        ({"breaker": "api"}, TypeError, "breaker"),
        ({"breaker_factory": "api"}, TypeError, "breaker_factory"),
        ({"max_hosts": 0}, ValueError, "max_hosts"),
        ({"max_hosts": 1.5}, TypeError, "max_hosts"),
        ({"max_hosts": True}, TypeError, "max_hosts"),
        ({"limiter": object()}, TypeError, "limiter"),
        ({"retry_statuses": 503}, TypeError, "retry_statuses"),
        ({"retry_statuses": "503"}, TypeError, "retry_statuses"),
        ({"retry_statuses": [503.0]}, TypeError, "retry_statuses"),
        ({"retry_statuses": [99]}, ValueError, "retry_statuses"),
        ({"propagate_deadline": 1}, TypeError, "propagate_deadline"),
        ({"deadline_header": b"grpc-timeout"}, TypeError, "deadline_header"),
        ({"deadline_header": ""}, ValueError, "deadline_header"),
        ({"deadline_header": "bad header"}, ValueError, "deadline_header"),
        ({"idempotency_keys": "yes"}, TypeError, "idempotency_keys"),
    ],
)
@pytest.mark.parametrize("cls", [ResilientTransport, AsyncResilientTransport])
def test_bad_arguments_are_named(
    cls: type, options: dict[str, Any], error: type[Exception], argument: str
) -> None:
    options = dict(options)
    transport = options.pop("transport", httpx.MockTransport(lambda request: httpx.Response(200)))
    with pytest.raises(error, match=argument):
        cls(transport, **options)


def test_breaker_and_breaker_factory_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="breaker and breaker_factory"):
        ResilientTransport(
            httpx.MockTransport(lambda request: httpx.Response(200)),
            breaker=CircuitBreaker("a"),
            breaker_factory=CircuitBreaker,
        )


def test_a_transport_of_the_other_kind_is_refused_with_a_hint() -> None:
    with pytest.raises(TypeError, match="use AsyncResilientTransport"):
        ResilientTransport(httpx.AsyncHTTPTransport())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="use ResilientTransport"):
        AsyncResilientTransport(httpx.HTTPTransport())  # type: ignore[arg-type]


def test_a_factory_that_does_not_make_a_breaker_is_refused(mode: str) -> None:
    session = Session(mode, Upstream(200), breaker_factory=lambda origin: origin)
    with pytest.raises(TypeError, match="breaker_factory must return"):
        session.request()


def test_unlimited_attempts_need_a_deadline(mode: str) -> None:
    upstream = Upstream(503, 200)
    session = Session(mode, upstream, retry=Retry(attempts=None, clock=FakeClock()))
    with pytest.raises(ValueError, match="attempts=None"):
        session.request()
    assert upstream.attempts() == 0
    assert session.request(deadline=5.0, clock=FakeClock()).status_code == 200


# -- the pure decisions ---------------------------------------------------------------------------


def _response(**headers: str) -> httpx.Response:
    return httpx.Response(503, headers=headers)


def test_retry_after_parses_both_forms_and_ignores_the_rest() -> None:
    assert transports.retry_after(_response()) is None
    assert transports.retry_after(_response(**{"Retry-After": " 120 "})) == 120.0
    assert transports.retry_after(_response(**{"Retry-After": "9" * 5000})) == math.inf
    assert transports.retry_after(_response(**{"Retry-After": "1e3"})) is None
    arabic_three = httpx.Response(503, headers=[(b"Retry-After", "\u0663".encode())])
    assert transports.retry_after(arabic_three) is None
    assert transports.retry_after(_response(**{"Retry-After": ""})) is None
    date = {"Date": "Sun, 06 Nov 1994 08:49:37 GMT"}
    assert (
        transports.retry_after(
            _response(**date, **{"Retry-After": "Sun, 06 Nov 1994 08:51:37 GMT"})
        )
        == 120.0
    )
    assert (
        transports.retry_after(
            _response(**date, **{"Retry-After": "Sun, 06 Nov 1994 08:40:00 GMT"})
        )
        == 0.0
    )
    assert transports.retry_after(_response(**date, **{"Retry-After": "Sun, 99 Nov"})) is None


def test_origins_spell_out_the_default_port() -> None:
    assert transports.origin_of(httpx.URL("https://Example.org/x?y")) == "https://example.org:443"
    assert transports.origin_of(httpx.URL("http://example.org/")) == "http://example.org:80"
    assert transports.origin_of(httpx.URL("http://[::1]:8000/")) == "http://[::1]:8000"


def test_tightened_lowers_each_entry_and_fills_missing_ones() -> None:
    assert transports.tightened({"connect": 5.0, "read": None, "write": 0.1, "pool": 9}, 1.0) == {
        "connect": 1.0,
        "read": 1.0,
        "write": 0.1,
        "pool": 1.0,
    }
    assert transports.tightened(None, 2.0) == dict.fromkeys(
        ("connect", "read", "write", "pool"), 2.0
    )


# -- hedging (async only) ------------------------------------------------------------------------


def _hedged(handler: Callable[..., Any], **options: Any) -> AsyncResilientTransport:
    return AsyncResilientTransport(
        httpx.MockTransport(handler), hedge=Hedge(0.5, clock=FakeClock()), **options
    )


async def test_a_slow_idempotent_request_is_hedged_and_the_slow_attempt_cancelled() -> None:
    seen: list[str] = []
    cancelled: list[str] = []
    events: list[Any] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("idempotency-key", ""))
        if len(seen) == 1:
            try:
                await anyio.sleep_forever()
            finally:
                cancelled.append("first")
        return httpx.Response(200, content=b"second")

    subscribe(events.append)
    try:
        async with httpx.AsyncClient(transport=_hedged(handler)) as client:
            response = await client.get(URL)
    finally:
        unsubscribe(events.append)
    assert response.content == b"second"
    assert len(seen) == 2
    assert cancelled == ["first"]
    hedges = [e for e in events if type(e).__name__ == "HedgeStarted"]
    assert [(e.policy, e.name, e.attempt) for e in hedges] == [
        ("hedge", "AsyncResilientTransport", 2)
    ]


async def test_post_and_streamed_bodies_are_not_hedged() -> None:
    calls: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        await anyio.sleep(0.01)  # a hedge on the FakeClock would start meanwhile
        return httpx.Response(200)

    async def body() -> AsyncIterator[bytes]:
        yield b"chunk"

    async with httpx.AsyncClient(transport=_hedged(handler)) as client:
        await client.post(URL, json={})
        await client.put(URL, content=body())
    assert calls == ["POST", "PUT"]


async def test_keyed_posts_are_hedged_with_one_key() -> None:
    keys: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["idempotency-key"])
        if len(keys) == 1:
            await anyio.sleep_forever()
        return httpx.Response(201)

    transport = _hedged(handler, idempotency_keys=True)
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.post(URL, json={"a": 1})).status_code == 201
    assert len(keys) == 2
    assert keys[0] == keys[1]


async def test_responses_that_lose_the_race_are_closed() -> None:
    streams: dict[bytes, Tracked] = {}
    gate = anyio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        name = b"%d" % (len(streams) + 1)
        streams[name] = Tracked([name])
        if name == b"1":
            await gate.wait()
        else:
            gate.set()  # the first attempt wakes up as the second one wins
        return httpx.Response(200, stream=streams[name])

    async with httpx.AsyncClient(transport=_hedged(handler)) as client:
        response = await client.get(URL)
    losers = [stream for name, stream in streams.items() if name != response.content]
    assert len(losers) == 1
    assert losers[0].closed


def test_hedging_is_refused_by_the_sync_transport_and_checked_by_the_async_one() -> None:
    with pytest.raises(TypeError, match="hedge is async only"):
        ResilientTransport(hedge=Hedge(0.1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="hedge must be"):
        AsyncResilientTransport(hedge=0.1)  # type: ignore[arg-type]


def test_a_huge_retry_after_waits_max_delay_hint(mode: str) -> None:
    retry, clock = quick(max_delay_hint=30.0)
    upstream = Upstream((503, {"Retry-After": "9" * 400}), 200)
    assert Session(mode, upstream, retry=retry).request().status_code == 200
    assert clock.sleeps == [30.0]


# -- imports --------------------------------------------------------------------------------------

_PROBE = """
import sys
import resilient, resilient.config, resilient.testing, resilient.instrumentation
assert "httpx" not in sys.modules, "the core imported httpx"
sys.modules["httpx"] = None  # as if it were not installed
try:
    import resilient.integrations.httpx
except ImportError as error:
    print(error)
"""


def test_the_core_never_imports_httpx_and_the_integration_says_how_to_install_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'resilient-patterns[httpx]'" in done.stdout
