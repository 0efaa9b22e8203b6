"""Fuzzing every header the project reads, alone and through the whole ASGI stack.

Parsers (``grpc-timeout``, Envoy milliseconds, ``x-request-timeout``, ``Idempotency-Key``,
``Retry-After``) get arbitrary bytes and well-formed values: they never raise, return None for
malformed input and the right value for well-formed input. Then a stack of every middleware
(deadline, rate limit keyed by ``X-Forwarded-For``, idempotency, bulkhead) gets requests with
arbitrary header bytes, called as plain ASGI (any bytes) and through httpx's ASGITransport:
the answer is never a 500 and nothing escapes; a malformed ``Idempotency-Key`` is a 400.
"""

from __future__ import annotations

import json
import string
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st

from resilient import Bulkhead, TokenBucket
from resilient.integrations._timeout_header import format_grpc_timeout, parse_grpc_timeout
from resilient.integrations.asgi import (
    BulkheadMiddleware,
    DeadlineMiddleware,
    IdempotencyMiddleware,
    RateLimitMiddleware,
    forwarded_client_address,
)
from resilient.integrations.asgi._deadline import parse_milliseconds, parse_seconds
from resilient.integrations.asgi._idempotency import parse_idempotency_key
from resilient.integrations.httpx import retry_after
from resilient.stores import MemoryStore

from ._models_support import bounded, record

UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"

# Bytes that look like header values: mostly printable, with the odd control byte and high bit.
header_bytes = st.one_of(
    st.binary(max_size=40),
    st.text(string.printable, max_size=40).map(str.encode),
    st.from_regex(rb"[0-9]{0,20}[HMSmun.]?[0-9]{0,4}", fullmatch=True),
)


def count(name: str, guarantee: str, inputs: int) -> None:
    record(name, guarantee, inputs=inputs)


@given(raw=header_bytes)
@bounded(150)
def test_fuzz_grpc_timeout_never_raises(raw: bytes) -> None:
    for value in (raw, raw.decode("latin-1")):
        seconds = parse_grpc_timeout(value)
        assert seconds is None or seconds >= 0.0
    count("test_fuzz_grpc_timeout_never_raises", "grpc-timeout parser", 1)


@given(digits=st.integers(0, 99_999_999), unit=st.sampled_from(sorted(UNITS)))
@bounded(200)
def test_fuzz_grpc_timeout_reads_every_well_formed_value(digits: int, unit: str) -> None:
    assert parse_grpc_timeout(f"{digits}{unit}") == digits * UNITS[unit]
    written = format_grpc_timeout(digits * UNITS[unit])
    again = parse_grpc_timeout(written)
    assert again is not None
    assert again <= digits * UNITS[unit] + 1e-9  # never more time than was left
    count("test_fuzz_grpc_timeout_reads_every_well_formed_value", "grpc-timeout round trip", 1)


@given(raw=header_bytes)
@bounded(150)
def test_fuzz_envoy_and_seconds_headers_never_raise(raw: bytes) -> None:
    for parse in (parse_milliseconds, parse_seconds):
        seconds = parse(raw)
        assert seconds is None or (seconds >= 0.0 and seconds < float("inf"))
    count("test_fuzz_envoy_and_seconds_headers_never_raise", "deadline header parsers", 1)


@given(raw=header_bytes | st.from_regex(rb'[ ]?"[ -~]{0,30}"(;[a-z]{1,3}(=[0-9a-z?"]{1,4})?)?'))
@bounded(200)
def test_fuzz_idempotency_key_parser(raw: bytes) -> None:
    key = parse_idempotency_key(raw)
    assert key is None or (isinstance(key, str) and 1 <= len(key) <= 255)
    count("test_fuzz_idempotency_key_parser", "Idempotency-Key parser", 1)


@given(key=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=255))
@bounded(200)
def test_fuzz_idempotency_key_sf_strings_round_trip(key: str) -> None:
    quoted = '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    assert parse_idempotency_key(quoted.encode()) == key
    count("test_fuzz_idempotency_key_sf_strings_round_trip", "Idempotency-Key sf-string", 1)


@given(token=st.text(TCHAR, min_size=1, max_size=255))
@bounded(100)
def test_fuzz_idempotency_key_tokens_are_read(token: str) -> None:
    assert parse_idempotency_key(token.encode()) == token
    count("test_fuzz_idempotency_key_tokens_are_read", "Idempotency-Key token", 1)


# From year 1000: email.utils reads a year below 100 as 19xx or 20xx (RFC 5322's obsolete
# two-digit years), which no HTTP-date carries.
dates = st.datetimes(
    min_value=datetime(1000, 1, 1),
    max_value=datetime(9999, 12, 30),
    timezones=st.just(timezone.utc),
)


@given(
    value=st.one_of(
        st.text(st.characters(max_codepoint=0xFF), max_size=40),
        st.integers(0, 10**20).map(str),
        dates.map(lambda d: format_datetime(d, usegmt=True)),
        st.from_regex(r"[A-Za-z]{3}, [0-9]{1,4} [A-Za-z]{3} [0-9]{1,6} [0-9:]{1,9} [+-][0-9]{4}"),
    ),
    date=st.none() | dates.map(lambda d: format_datetime(d, usegmt=True)) | st.text(max_size=10),
)
@bounded(150)
def test_fuzz_retry_after_never_raises(value: str, date: str | None) -> None:
    headers = [("retry-after", value.encode("latin-1", "replace"))]
    if date is not None:
        headers.append(("date", date.encode("latin-1", "replace")))
    seconds = retry_after(httpx.Response(503, headers=headers))
    assert seconds is None or seconds >= 0.0
    count("test_fuzz_retry_after_never_raises", "Retry-After parser", 1)


@given(when=dates, now=dates)
@bounded(100)
def test_fuzz_retry_after_dates_measure_from_the_date_header(when: datetime, now: datetime) -> None:
    response = httpx.Response(
        503,
        headers={
            "retry-after": format_datetime(when, usegmt=True),
            "date": format_datetime(now, usegmt=True),
        },
    )
    expected = max(0.0, (when.replace(microsecond=0) - now.replace(microsecond=0)).total_seconds())
    assert retry_after(response) == expected
    count("test_fuzz_retry_after_dates_measure_from_the_date_header", "Retry-After dates", 1)


# -- the whole stack ---------------------------------------------------------------------------


async def endpoint(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"created"})


def stack() -> Any:
    app: Any = BulkheadMiddleware(endpoint, bulkhead=Bulkhead(4, max_waiting=8))
    app = IdempotencyMiddleware(app, store=MemoryStore())
    app = RateLimitMiddleware(
        app, limiter=TokenBucket(1000.0, 1000), key=forwarded_client_address(2)
    )
    return DeadlineMiddleware(app, default=5.0, maximum=30.0)


NAMES = [
    b"grpc-timeout",
    b"x-envoy-expected-rq-timeout-ms",
    b"x-request-timeout",
    b"idempotency-key",
    b"x-forwarded-for",
    b"authorization",
    b"content-type",
]
APP = stack()
ALLOWED = {201, 400, 409, 422, 429, 503, 504}


DEADLINE_PARSERS = [
    (b"grpc-timeout", parse_grpc_timeout),
    (b"x-envoy-expected-rq-timeout-ms", parse_milliseconds),
    (b"x-request-timeout", parse_seconds),
]


def joined(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    values = [v for k, v in headers if k == name]
    if not values:
        return None
    return values[0] if len(values) == 1 else b", ".join(values)


def expected_key_status(headers: list[tuple[bytes, bytes]]) -> int | None:
    """400 when the request's Idempotency-Key is malformed (None: no opinion).

    Unless the deadline has expired or is about to: the deadline middleware, outermost,
    answers 504 (the first deadline header with a well-formed value counts).
    """
    for name, parse in DEADLINE_PARSERS:
        raw = joined(headers, name)
        seconds = None if raw is None else parse(raw)
        if seconds is not None:
            if seconds < 1.0:
                return None
            break
    key = joined(headers, b"idempotency-key")
    if key is None:
        return None
    return 400 if parse_idempotency_key(key) is None else None


@given(
    headers=st.lists(st.tuples(st.sampled_from(NAMES), header_bytes), max_size=6),
    method=st.sampled_from(["POST", "PATCH", "GET"]),
    client=st.none() | st.tuples(st.text(max_size=20), st.integers(0, 65535)),
    body=st.binary(max_size=64),
)
@bounded(100)
async def test_fuzz_asgi_stack_never_answers_500(
    headers: list[tuple[bytes, bytes]],
    method: str,
    client: tuple[str, int] | None,
    body: bytes,
) -> None:
    """Raw ASGI: any bytes in any of the headers read by the middlewares."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/orders",
        "raw_path": b"/orders",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": client,
        "server": ("testserver", 80),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await APP(scope, receive, send)
    status = sent[0]["status"]
    assert status in ALLOWED
    if method != "GET" and expected_key_status(headers) == 400:
        assert status == 400
        assert json.loads(sent[1]["body"])["status"] == 400
    count("test_fuzz_asgi_stack_never_answers_500", "ASGI stack: no 500 on any header", 1)


latin1_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40
).map(str.strip)


@given(
    headers=st.dictionaries(st.sampled_from([n.decode() for n in NAMES]), latin1_values),
    body=st.binary(max_size=32),
)
@bounded(50)
async def test_fuzz_asgi_stack_through_httpx_never_answers_500(
    headers: dict[str, str], body: bytes
) -> None:
    """The same stack through httpx.ASGITransport, with header values httpx lets through."""
    transport = httpx.ASGITransport(app=APP, client=("10.0.0.1", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        encoded = {k: v.encode("latin-1") for k, v in headers.items()}
        response = await client.post("/orders", headers=encoded, content=body)
    assert response.status_code in ALLOWED
    if expected_key_status([(k.encode(), v) for k, v in encoded.items()]) == 400:
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
    count(
        "test_fuzz_asgi_stack_through_httpx_never_answers_500",
        "ASGI stack through httpx: no 500",
        1,
    )
