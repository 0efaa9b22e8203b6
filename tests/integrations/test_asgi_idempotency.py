"""IdempotencyMiddleware through a real ASGI stack (httpx.ASGITransport), asyncio and trio."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from typing import Any

import anyio
import http_sf
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilient.instrumentation import (
    IdempotencyLeaseLostEvent,
    IdempotentReplay,
    subscribe,
    unsubscribe,
)
from resilient.integrations.asgi import IdempotencyMiddleware
from resilient.integrations.asgi._idempotency import parse_idempotency_key
from resilient.stores import MemoryStore, RedisStore


class Recorder:
    """A plain ASGI app: answers from the request, counts the calls, keeps the bodies seen."""

    def __init__(self) -> None:
        self.calls = 0
        self.bodies: list[list[bytes]] = []
        self.status = 201
        self.raise_error = False
        self.gate: anyio.Event | None = None
        self.entered: anyio.Event | None = None
        self.response_chunks = 1

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            assert message["type"] == "lifespan.startup"
            await send({"type": "lifespan.startup.complete"})
            return
        self.calls += 1
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.bodies.append(chunks)
        if self.entered is not None:
            self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.raise_error:
            raise RuntimeError("handler failed")
        body = json.dumps({"n": self.calls, "body": b"".join(chunks).decode()}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [
                    (b"Content-Type", b"application/json"),
                    (b"location", b"/orders/1"),
                    (b"etag", b'"v1"'),
                    (b"set-cookie", b"session=secret"),
                    (b"x-custom", b"yes"),
                ],
            }
        )
        step = max(1, len(body) // self.response_chunks)
        for start in range(0, len(body), step):
            end = start + step
            more = end < len(body)
            await send({"type": "http.response.body", "body": body[start:end], "more_body": more})
        if len(body) == 0:
            await send({"type": "http.response.body", "body": b""})


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemoryStore()
    return RedisStore(request.getfixturevalue("redis_client"))


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
def events() -> Iterator[list[Any]]:
    seen: list[Any] = []
    subscribe(seen.append)
    yield seen
    unsubscribe(seen.append)


async def test_a_keyed_post_runs_once_and_is_replayed_with_its_status_body_and_headers(
    store: Any, events: list[Any]
) -> None:
    inner = Recorder()
    app = IdempotencyMiddleware(inner, store=store)
    async with client_for(app) as client:
        first = await client.post("/orders", content=b"pay 5", headers={"Idempotency-Key": "k1"})
        second = await client.post("/orders", content=b"pay 5", headers={"Idempotency-Key": "k1"})
    assert inner.calls == 1
    assert first.status_code == second.status_code == 201
    assert first.content == second.content == b'{"n": 1, "body": "pay 5"}'
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert first.headers["set-cookie"] == "session=secret"
    assert "set-cookie" not in second.headers
    assert "x-custom" not in second.headers
    for name in ("content-type", "location", "etag"):
        assert second.headers[name] == first.headers[name]
    assert second.headers["content-length"] == str(len(second.content))
    assert [e for e in events if isinstance(e, IdempotentReplay)] == [
        IdempotentReplay("idempotency", "http", "k1")
    ]


async def test_replay_headers_extend_the_allow_list(anyio_backend: str) -> None:
    inner = Recorder()
    app = IdempotencyMiddleware(inner, store=MemoryStore(), replay_headers=["X-Custom"])
    async with client_for(app) as client:
        await client.post("/", headers={"Idempotency-Key": "k"})
        replay = await client.post("/", headers={"Idempotency-Key": "k"})
    assert replay.headers["x-custom"] == "yes"
    assert "set-cookie" not in replay.headers


async def test_the_quoted_and_the_bare_form_are_the_same_key(anyio_backend: str) -> None:
    inner = Recorder()
    app = IdempotencyMiddleware(inner, store=MemoryStore())
    async with client_for(app) as client:
        await client.post("/", headers={"Idempotency-Key": '"abc-1"'})
        replay = await client.post("/", headers={"Idempotency-Key": "abc-1"})
    assert inner.calls == 1
    assert replay.headers["idempotent-replayed"] == "true"


async def test_a_missing_key_is_400_when_required_and_passes_through_otherwise(
    anyio_backend: str,
) -> None:
    inner = Recorder()
    async with client_for(IdempotencyMiddleware(inner, store=MemoryStore())) as client:
        assert (await client.post("/")).status_code == 201
        assert (await client.post("/")).status_code == 201
    assert inner.calls == 2
    strict = IdempotencyMiddleware(inner, store=MemoryStore(), required=True)
    async with client_for(strict) as client:
        refused = await client.post("/")
        allowed = await client.get("/")
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["title"] == "Idempotency-Key is missing"
    assert allowed.status_code == 201
    assert inner.calls == 3


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b'""',
        b'"unterminated',
        b"a" * 256,
        b'"' + b"a" * 256 + b'"',
        b"a b",
        b'"a\\x"',
        b"\xc3\xa9",
    ],
)
async def test_malformed_keys_are_400(anyio_backend: str, value: bytes) -> None:
    inner = Recorder()
    app = IdempotencyMiddleware(inner, store=MemoryStore())
    async with client_for(app) as client:
        response = await client.post("/", headers=[(b"Idempotency-Key", value)])
    assert response.status_code == 400
    assert response.json()["status"] == 400
    assert inner.calls == 0


@pytest.mark.parametrize(
    ("path", "body"), [("/orders", b"pay 6"), ("/other", b"pay 5"), ("/orders?x=1", b"pay 5")]
)
async def test_the_key_with_a_different_request_is_422(store: Any, path: str, body: bytes) -> None:
    inner = Recorder()
    app = IdempotencyMiddleware(inner, store=store)
    async with client_for(app) as client:
        await client.post("/orders", content=b"pay 5", headers={"Idempotency-Key": "k"})
        response = await client.post(path, content=body, headers={"Idempotency-Key": "k"})
    assert response.status_code == 422
    assert response.json()["title"] == "Idempotency-Key is already used"
    assert inner.calls == 1


async def test_a_duplicate_while_the_first_is_in_flight_gets_409_with_retry_after(
    store: Any,
) -> None:
    inner = Recorder()
    inner.gate = anyio.Event()
    inner.entered = anyio.Event()
    app = IdempotencyMiddleware(inner, store=store, lock_timeout=30)
    results: list[httpx.Response] = []
    async with client_for(app) as client:

        async def first() -> None:
            results.append(await client.post("/", headers={"Idempotency-Key": "k"}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await inner.entered.wait()
            conflict = await client.post("/", headers={"Idempotency-Key": "k"})
            inner.gate.set()
        replay = await client.post("/", headers={"Idempotency-Key": "k"})
    assert conflict.status_code == 409
    assert 1 <= int(conflict.headers["retry-after"]) <= 30
    assert conflict.headers["content-type"] == "application/problem+json"
    assert results[0].status_code == 201
    assert replay.content == results[0].content
    assert inner.calls == 1


@pytest.mark.parametrize("status", [500, 503, 401, 403, 408, 429])
async def test_errors_and_refusals_are_not_stored(anyio_backend: str, status: int) -> None:
    inner = Recorder()
    inner.status = status
    app = IdempotencyMiddleware(inner, store=MemoryStore())
    async with client_for(app) as client:
        first = await client.post("/", headers={"Idempotency-Key": "k"})
        inner.status = 201
        second = await client.post("/", headers={"Idempotency-Key": "k"})
    assert first.status_code == status
    assert second.status_code == 201
    assert "idempotent-replayed" not in second.headers
    assert inner.calls == 2


@pytest.mark.parametrize("status", [200, 400, 404, 409, 422])
async def test_other_statuses_are_stored(anyio_backend: str, status: int) -> None:
    inner = Recorder()
    inner.status = status
    app = IdempotencyMiddleware(inner, store=MemoryStore())
    async with client_for(app) as client:
        await client.post("/", headers={"Idempotency-Key": "k"})
        second = await client.post("/", headers={"Idempotency-Key": "k"})
    assert second.status_code == status
    assert second.headers["idempotent-replayed"] == "true"
    assert inner.calls == 1


async def test_an_exception_releases_the_key(store: Any) -> None:
    inner = Recorder()
    inner.raise_error = True
    app = IdempotencyMiddleware(inner, store=store)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        failed = await client.post("/", headers={"Idempotency-Key": "k"})
        inner.raise_error = False
        retried = await client.post("/", headers={"Idempotency-Key": "k"})
    assert failed.status_code == 500
    assert retried.status_code == 201
    assert inner.calls == 2


async def test_two_principals_with_the_same_key_never_see_each_others_responses(
    store: Any,
) -> None:
    inner = Recorder()
    app = IdempotencyMiddleware(inner, store=store)
    async with client_for(app) as client:
        alice = await client.post(
            "/", content=b"x", headers={"Idempotency-Key": "k", "Authorization": "Bearer alice"}
        )
        bob = await client.post(
            "/", content=b"x", headers={"Idempotency-Key": "k", "Authorization": "Bearer bob"}
        )
        anonymous = await client.post("/", content=b"x", headers={"Idempotency-Key": "k"})
        alice_again = await client.post(
            "/", content=b"x", headers={"Idempotency-Key": "k", "Authorization": "Bearer alice"}
        )
    assert inner.calls == 3
    assert len({alice.content, bob.content, anonymous.content}) == 3
    assert alice_again.content == alice.content
    assert "idempotent-replayed" not in bob.headers


async def test_a_custom_principal_scopes_keys(anyio_backend: str) -> None:
    inner = Recorder()

    def tenant(scope: Any) -> str:
        return dict(scope["headers"]).get(b"x-tenant", b"").decode()

    app = IdempotencyMiddleware(inner, store=MemoryStore(), principal=tenant)
    async with client_for(app) as client:
        for tenant_name in ("a", "b", "a"):
            await client.post("/", headers={"Idempotency-Key": "k", "X-Tenant": tenant_name})
    assert inner.calls == 2


async def test_a_chunked_request_body_reaches_the_app_unchanged(store: Any) -> None:
    inner = Recorder()
    app = IdempotencyMiddleware(inner, store=store)

    async def chunks() -> Any:
        for part in (b"one,", b"two,", b"", b"three"):
            yield part

    async with client_for(app) as client:
        first = await client.post("/", content=chunks(), headers={"Idempotency-Key": "k"})
        # The same bytes in one piece are the same request: replayed.
        again = await client.post("/", content=b"one,two,three", headers={"Idempotency-Key": "k"})
    assert b"".join(inner.bodies[0]) == b"one,two,three"
    assert len(inner.bodies[0]) > 1
    assert first.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert inner.calls == 1


async def test_bodies_over_max_body_pass_through_unstored(anyio_backend: str) -> None:
    inner = Recorder()
    app = IdempotencyMiddleware(inner, store=MemoryStore(), max_body=10)
    async with client_for(app) as client:
        for _ in range(2):  # a request body over the cap
            response = await client.post("/", content=b"x" * 11, headers={"Idempotency-Key": "a"})
            assert response.status_code == 201
        assert b"".join(inner.bodies[-1]) == b"x" * 11
        # a small request whose response is over the cap: the key is released
        for _ in range(2):
            response = await client.post("/", content=b"y", headers={"Idempotency-Key": "b"})
            assert "idempotent-replayed" not in response.headers
    assert inner.calls == 4


async def test_a_chunked_response_is_stored_whole(anyio_backend: str) -> None:
    inner = Recorder()
    inner.response_chunks = 4
    app = IdempotencyMiddleware(inner, store=MemoryStore())
    async with client_for(app) as client:
        first = await client.post("/", content=b"abc", headers={"Idempotency-Key": "k"})
        second = await client.post("/", content=b"abc", headers={"Idempotency-Key": "k"})
    assert second.content == first.content
    assert inner.calls == 1


async def test_other_methods_and_scopes_pass_through(anyio_backend: str) -> None:
    inner = Recorder()
    app = IdempotencyMiddleware(inner, store=MemoryStore(), required=True)
    async with client_for(app) as client:
        for _ in range(2):
            assert (await client.get("/", headers={"Idempotency-Key": "k"})).status_code == 201
            assert (await client.put("/", headers={"Idempotency-Key": "k"})).status_code == 201
    assert inner.calls == 4
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}]


async def test_an_unreachable_store_answers_503_without_calling_the_app(
    anyio_backend: str,
) -> None:
    import redis

    inner = Recorder()
    store = RedisStore(redis.Redis(port=1, socket_connect_timeout=0.5), on_error="allow")
    app = IdempotencyMiddleware(inner, store=store)
    async with client_for(app) as client:
        response = await client.post("/", headers={"Idempotency-Key": "k"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    assert inner.calls == 0


async def test_it_works_as_starlette_middleware(anyio_backend: str) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    calls = []

    async def create(request: Request) -> JSONResponse:
        calls.append(await request.body())
        return JSONResponse({"id": len(calls)}, status_code=201)

    app = Starlette(routes=[Route("/orders", create, methods=["POST"])])
    app.add_middleware(IdempotencyMiddleware, store=MemoryStore(), required=True)
    async with client_for(app) as client:
        first = await client.post("/orders", json={"a": 1}, headers={"Idempotency-Key": "k"})
        second = await client.post("/orders", json={"a": 1}, headers={"Idempotency-Key": "k"})
        missing = await client.post("/orders", json={"a": 1})
    assert first.json() == second.json() == {"id": 1}
    assert second.headers["idempotent-replayed"] == "true"
    assert missing.status_code == 400
    assert calls == [b'{"a":1}']


def test_constructor_arguments_are_checked() -> None:
    store = MemoryStore()
    with pytest.raises(TypeError, match="methods"):
        IdempotencyMiddleware(Recorder(), store=store, methods="POST")
    with pytest.raises(ValueError, match="ttl"):
        IdempotencyMiddleware(Recorder(), store=store, ttl=0)
    with pytest.raises(ValueError, match="max_body"):
        IdempotencyMiddleware(Recorder(), store=store, max_body=-1)
    with pytest.raises(TypeError, match="store"):
        IdempotencyMiddleware(Recorder(), store=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="principal"):
        IdempotencyMiddleware(Recorder(), store=store, principal="x")  # type: ignore[arg-type]


# -- the Idempotency-Key grammar, against an independent Structured Fields parser ---------------


def sf_key(value: bytes) -> str | None:
    """What http_sf makes of the value: the String or Token of an Item, else None."""
    try:
        item, _params = http_sf.parse(value, tltype="item")
    except Exception:
        return None
    if isinstance(item, str) and not isinstance(item, http_sf.DisplayString):
        return str(item)
    if isinstance(item, http_sf.Token):
        return str(item)
    return None


def expected_key(value: bytes) -> str | None:
    key = sf_key(value)
    if key is None:
        stripped = value.strip(b" ")
        tchars = set(string.ascii_letters.encode() + string.digits.encode() + b"!#$%&'*+-.^_`|~")
        if stripped and all(c in tchars for c in stripped):
            key = stripped.decode()
    return key if key is not None and 1 <= len(key) <= 255 else None


_pieces = st.sampled_from(
    [
        '"',
        "\\",
        '\\"',
        "\\\\",
        ";",
        "=",
        " ",
        "\t",
        "a",
        "Z",
        "0",
        "9",
        "-",
        ".",
        "*",
        ":",
        "/",
        "?1",
        "?0",
        "@12",
        '%"',
        "%c3",
        "%C3",
        ":aGk=:",
        ":a:",
        "é",
        "\x00",
        "\x7f",
        "\r",
        ";a=1",
        ";b",
        ';c="x"',
        ";d=tok",
        ";e=1.5",
        ";f=@-5",
        ';g=%"h%c3%a9"',
        ";h=:aGk=:",
        ";I=1",
        "1.2345",
        "-",
        "()",
        ",",
        "'",
    ]
)
header_values = st.one_of(
    st.lists(_pieces, max_size=12).map("".join),
    st.text(max_size=40),
    st.text(alphabet="abc-_.~0123456789", min_size=250, max_size=260),
    st.text(alphabet="abc", min_size=250, max_size=260).map(lambda s: f'"{s}"'),
    st.builds(lambda s, p: f'"{s}"{p}', st.text(max_size=20), st.text(max_size=12)),
)


@settings(max_examples=400, deadline=None)
@given(value=header_values)
def test_key_acceptance_agrees_with_a_structured_fields_parser(value: str) -> None:
    raw = value.encode("utf-8")
    assert parse_idempotency_key(raw) == expected_key(raw)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=header_values)
def test_fuzzed_keys_never_cause_a_500(value: str) -> None:
    raw = value.encode("utf-8")
    if b"\r" in raw or b"\n" in raw or b"\x00" in raw:
        raw = raw.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"")
    inner = Recorder()
    app = IdempotencyMiddleware(inner, store=MemoryStore())

    async def scenario() -> list[int]:
        statuses = []
        async with client_for(app) as client:
            for _ in range(2):
                response = await client.post("/", headers=[(b"Idempotency-Key", raw)])
                statuses.append(response.status_code)
        return statuses

    statuses = anyio.run(scenario)
    if expected_key(raw) is None:
        assert statuses == [400, 400]
        assert inner.calls == 0
    else:
        assert statuses == [201, 201]
        assert inner.calls == 1


async def test_a_response_that_outlives_its_lease_is_sent_but_not_stored(
    store: Any, events: list[Any]
) -> None:
    inner = Recorder()
    inner.gate = anyio.Event()
    app = IdempotencyMiddleware(inner, store=store, lock_timeout=0.05)
    async with client_for(app) as client:

        async def open_gate() -> None:
            await anyio.sleep(0.3)  # longer than the lease, however busy the machine
            assert inner.gate is not None
            inner.gate.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(open_gate)
            late = await client.post("/", headers={"Idempotency-Key": "k"})
        inner.gate = None
        again = await client.post("/", headers={"Idempotency-Key": "k"})
    assert late.status_code == 201
    assert "idempotent-replayed" not in again.headers  # the late response was not stored
    assert inner.calls == 2
    assert [e for e in events if isinstance(e, IdempotencyLeaseLostEvent)] == [
        IdempotencyLeaseLostEvent("idempotency", "http", "k")
    ]
