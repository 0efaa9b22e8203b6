"""Under real load: wrk against uvicorn with two workers sharing one RedisStore limit."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from .._redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
DURATION = 5  # seconds of load: thousands of requests here, far past the 500 admitted

COUNTING_SCRIPT = r"""
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    statuses = {}
    workers = {}
end

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
    local worker = headers["x-worker"]
    if worker then workers[worker] = true end
end

function done(summary, latency, requests)
    local total, seen = {}, {}
    for _, thread in ipairs(threads) do
        for status, count in pairs(thread:get("statuses")) do
            total[status] = (total[status] or 0) + count
        end
        for worker, _ in pairs(thread:get("workers")) do seen[worker] = true end
    end
    for status, count in pairs(total) do
        io.write(string.format("status %d %d\n", status, count))
    end
    for worker, _ in pairs(seen) do io.write(string.format("worker %s\n", worker)) end
    local e = summary.errors
    io.write(string.format("errors %d %d %d %d\n", e.connect, e.read, e.write, e.timeout))
end
"""


def find_wrk() -> str | None:
    configured = os.environ.get("WRK")
    if configured and os.access(configured, os.X_OK):
        return configured
    return shutil.which("wrk")


@pytest.mark.slow
def test_two_uvicorn_workers_sharing_redis_admit_exactly_the_capacity_under_wrk(
    redis_url: str, tmp_path: Path
) -> None:
    wrk = find_wrk()
    if wrk is None:
        message = "wrk is not installed (Debian: apt-get install wrk; make test installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    env = {
        **os.environ,
        "RESILIENT_WRK_REDIS_URL": redis_url,
        "RESILIENT_WRK_NAME": f"wrk-{uuid.uuid4().hex}",
        "PYTHONPATH": str(ROOT),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.integrations._wrk_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        # Wait (bounded) until both workers answer: each health check opens a new connection.
        workers: set[str] = set()
        for _ in range(600):
            if server.poll() is not None:
                break
            try:
                response = httpx.get(f"{url}/health", timeout=2.0)
                workers.add(response.headers["x-worker"])
            except httpx.TransportError:
                pass
            if len(workers) == 2:
                break
            time.sleep(0.05)
        assert len(workers) == 2, "uvicorn did not start two workers"
        script = tmp_path / "count.lua"
        script.write_text(COUNTING_SCRIPT)
        # A new connection per request, so that the kernel spreads the load over both workers
        # (long-lived connections could all land on one).
        result = subprocess.run(
            [
                wrk,
                "-t2",
                "-c16",
                f"-d{DURATION}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                "-H",
                "Connection: close",
                url + "/",
            ],
            capture_output=True,
            text=True,
            timeout=DURATION + 60,
            check=True,
        )
    finally:
        server.terminate()
        try:
            _, stderr = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            _, stderr = server.communicate()
    statuses = {
        int(status): int(count)
        for status, count in re.findall(r"^status (\d+) (\d+)$", result.stdout, re.M)
    }
    answered_by = set(re.findall(r"^worker (\d+)$", result.stdout, re.M))
    errors = re.search(r"^errors (\d+) (\d+) (\d+) (\d+)$", result.stdout, re.M)
    assert errors is not None, result.stdout
    assert statuses.get(200) == 500, (statuses, result.stdout, stderr.decode()[-2000:])
    assert set(statuses) == {200, 429}, statuses
    assert statuses[429] > 500  # the load went on well past the capacity
    assert answered_by == workers  # both workers served the load
    assert errors.groups() == ("0", "0", "0", "0"), result.stdout
