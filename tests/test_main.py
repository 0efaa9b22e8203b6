"""The operator CLI, ``python -m resilient dlq ...``, against a real redis-server."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from resilient import DeadLetterQueue
from resilient.__main__ import main
from resilient.stores import RedisStore

from ._dead_letters import POISON, OrderPlaced, buggy
from ._redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resilient", "dlq", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def parked(redis_url: str) -> Iterator[DeadLetterQueue]:
    """100 messages through the buggy handler: 7 parked in the queue "orders"."""
    store = RedisStore.from_url(redis_url, socket_timeout=2.0)
    dlq = DeadLetterQueue("orders", store=store)
    handle = dlq.capture()(buggy)
    for order_id in range(100):
        handle(OrderPlaced(order_id=order_id, amount=order_id / 2))
    assert dlq.count() == len(POISON)
    yield dlq
    store.client.close()


def test_cli_counts_lists_and_replays_parked_messages(
    parked: DeadLetterQueue, redis_url: str
) -> None:
    counted = cli("count", "orders", "--redis", redis_url)
    assert (counted.returncode, counted.stdout) == (0, "7\n")

    listed = cli("list", "orders", "--redis", redis_url)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "ATTEMPTS",
        "PARKED",
        "(UTC)",
        "FUNCTION",
        "ERROR",
        "ARGUMENTS",
    ]
    assert len(lines) == 1 + len(POISON)
    for order_id, line in zip(sorted(POISON), lines[1:], strict=True):
        assert f"ValueError: cannot process order {order_id}" in line
        assert "tests._dead_letters:buggy" in line
        assert f'"order_id": {order_id}' in line

    invalid = cli(
        "replay", "orders", "--redis", redis_url, "--handler", "tests._dead_letters:renamed"
    )
    assert invalid.returncode == 1
    assert "replayed 0, failed 0, invalid 7; 7 still parked" in invalid.stdout
    assert invalid.stdout.count("no longer validates") == 7
    assert parked.count() == 7

    replayed = cli(
        "replay", "orders", "--redis", redis_url, "--handler", "tests._dead_letters:fixed"
    )
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 7, failed 0, invalid 0; 0 still parked" in replayed.stdout
    assert "replaying [##############################] 7/7" in replayed.stderr
    assert parked.count() == 0

    empty = cli("list", "orders", "--redis", redis_url)
    assert empty.stdout == "no entries parked in 'orders'\n"


def test_cli_replays_with_an_async_handler_and_purges(
    parked: DeadLetterQueue, redis_url: str
) -> None:
    out = io.StringIO()
    code = main(
        [
            "dlq",
            "replay",
            "orders",
            "--redis",
            redis_url,
            "--handler",
            "tests._dead_letters:afixed",
            "--limit",
            "2",
        ],
        out=out,
    )
    assert code == 0
    assert "replayed 2, failed 0, invalid 0; 5 still parked" in out.getvalue()
    out = io.StringIO()
    assert main(["dlq", "purge", "orders", "--redis", redis_url], out=out) == 0
    assert out.getvalue() == "purged 5 entries from 'orders'\n"
    assert parked.count() == 0


def test_cli_reports_handlers_that_still_fail(parked: DeadLetterQueue, redis_url: str) -> None:
    out = io.StringIO()
    code = main(
        ["dlq", "replay", "orders", "--redis", redis_url, "--handler", "tests._dead_letters:buggy"],
        out=out,
    )
    assert code == 1
    assert out.getvalue().count("failed ") == 1 + 7
    assert "builtins.ValueError: cannot process order 3" in out.getvalue()
    assert parked.count() == 7


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (None, "replay needs --handler MODULE:FUNCTION"),
        ("tests._dead_letters", "--handler must look like module:function"),
        ("tests._no_such_module:fix", "cannot import the handler module 'tests._no_such_module'"),
        ("tests._dead_letters:nope", "the handler 'tests._dead_letters:nope' does not exist"),
        ("tests._dead_letters:not_callable", "is not callable"),
    ],
)
def test_cli_handler_errors_are_one_line_with_exit_code_2(
    redis_url: str, capsys: pytest.CaptureFixture[str], handler: str | None, message: str
) -> None:
    argv = ["dlq", "replay", "orders", "--redis", redis_url]
    if handler is not None:
        argv += ["--handler", handler]
    assert main(argv, out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err
    assert err.count("\n") == 1


def test_cli_bad_url_is_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "count", "orders", "--redis", "http://localhost"], out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bad --redis URL 'http://localhost'")
    assert err.count("\n") == 1


def test_cli_unreachable_redis_is_exit_code_1(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert main(["dlq", "list", "orders", "--redis", url], out=io.StringIO()) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach Redis at {url}")
    assert err.count("\n") == 1


def test_cli_bad_limit_is_exit_code_2(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "list", "orders", "--redis", redis_url, "--limit", "0"]) == 2
    assert "--limit must be >= 1" in capsys.readouterr().err


def test_cli_usage_errors_exit_with_argparse_code_2() -> None:
    result = cli("list", "orders")  # --redis missing
    assert result.returncode == 2
    assert "--redis" in result.stderr
