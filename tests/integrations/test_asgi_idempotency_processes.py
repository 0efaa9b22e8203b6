"""Exactly once across processes: uvicorn workers on 127.0.0.1 sharing one redis-server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import redis

import resilient
from resilient import StoreUnavailable
from resilient.integrations.asgi import IdempotencyMiddleware
from resilient.stores import RedisStore

from .._redis_server import free_port

pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.redis]


@contextmanager
def serve(redis_url: str, *, workers: int = 1, **env: str) -> Iterator[tuple[str, Any]]:
    """uvicorn serving tests/integrations/_idempotency_app.py on a free port of 127.0.0.1."""
    port = free_port()
    paths = [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "REDIS_URL": redis_url,
        **env,
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "tests.integrations._idempotency_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=environment, cwd=ROOT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/", timeout=1.0)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("uvicorn did not start") from None
                time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


async def post_until_answered(client: httpx.AsyncClient, url: str, key: str) -> httpx.Response:
    """POST, retrying 409s as the draft allows (no correction needed), at most 60 times."""
    for _ in range(60):
        response = await client.post(url, content=b"pay 5", headers={"Idempotency-Key": key})
        if response.status_code != 409:
            return response
        await anyio.sleep(min(1.0, float(response.headers["retry-after"])))
    raise AssertionError("still 409 after 60 tries")


def test_fifty_concurrent_posts_through_four_workers_run_the_handler_once(
    redis_url: str,
) -> None:
    counter = redis.Redis.from_url(redis_url)
    with serve(redis_url, workers=4, SLOW_SECONDS="0.5") as (url, _):

        async def storm() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=50)
            async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
                responses: list[httpx.Response] = []

                async def one() -> None:
                    responses.append(await post_until_answered(client, url + "/pay", "once"))

                async with anyio.create_task_group() as tg:
                    for _ in range(50):
                        tg.start_soon(one)
                return responses

        responses = anyio.run(storm)
    assert int(counter.get("runs") or 0) == 1
    assert len(responses) == 50
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    replayed = [r for r in responses if r.headers.get("idempotent-replayed") == "true"]
    assert len(replayed) == 49
    assert all("set-cookie" not in r.headers for r in replayed)
    counter.close()


def test_a_worker_killed_mid_request_blocks_the_key_until_its_lease_ends(redis_url: str) -> None:
    counter = redis.Redis.from_url(redis_url)
    with (
        serve(redis_url, APP_NAME="doomed", SLOW_SECONDS="60", LOCK_TIMEOUT="3") as (doomed, p),
        serve(redis_url, APP_NAME="survivor", SLOW_SECONDS="0", LOCK_TIMEOUT="3") as (other, _),
    ):

        def first_request() -> None:
            with contextlib.suppress(httpx.TransportError):  # the server dies under it
                httpx.post(doomed + "/pay", content=b"pay 5", headers={"Idempotency-Key": "k"})

        thread = threading.Thread(target=first_request, daemon=True)
        thread.start()
        for _ in range(200):
            if int(counter.get("started") or 0) == 1:
                break
            time.sleep(0.05)
        assert int(counter.get("started") or 0) == 1
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)
        thread.join(10)

        conflict = httpx.post(other + "/pay", content=b"pay 5", headers={"Idempotency-Key": "k"})
        assert conflict.status_code == 409
        assert 1 <= int(conflict.headers["retry-after"]) <= 3
        answer = None
        for _ in range(100):  # the lease is 3 s: bounded wait for it to run out
            answer = httpx.post(other + "/pay", content=b"pay 5", headers={"Idempotency-Key": "k"})
            if answer.status_code != 409:
                break
            time.sleep(0.1)
        assert answer is not None
        assert answer.status_code == 201
        assert answer.json()["app"] == "survivor"
        assert "idempotent-replayed" not in answer.headers
        replay = httpx.post(other + "/pay", content=b"pay 5", headers={"Idempotency-Key": "k"})
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == answer.json()
    assert int(counter.get("runs") or 0) == 1  # the killed worker never finished nor wrote
    counter.close()


def test_redis_down_fails_closed_and_keys_are_gone_after_a_restart(
    redis_server: Any, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    store = RedisStore(client, on_error="allow")
    runs: list[str] = []

    @resilient.idempotent(store=store, key=lambda x: x)
    def work(x: str) -> str:
        runs.append(x)
        return x

    async def handler(scope: Any, receive: Any, send: Any) -> None:
        runs.append("http")
        await receive()
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"made"})

    app = IdempotencyMiddleware(handler, store=store)

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.post("/", headers={"Idempotency-Key": "k"})

    assert work("k") == "k"
    assert anyio.run(post).status_code == 201
    assert runs == ["k", "http"]

    redis_server.stop()
    with pytest.raises(StoreUnavailable):
        work("k")
    down = anyio.run(post)
    assert down.status_code == 503
    assert down.headers["retry-after"] == "1"
    assert runs == ["k", "http"]

    redis_server.start()  # no persistence: an empty server
    assert work("k") == "k"
    again = anyio.run(post)
    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers
    assert runs == ["k", "http", "k", "http"]  # the keys were lost with the server's memory
    client.close()
