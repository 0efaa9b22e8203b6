"""The operator command line: ``python -m resilient dlq {list,count,replay,purge} NAME``.

```text
python -m resilient dlq list orders --redis redis://127.0.0.1:6379/0
python -m resilient dlq count orders --redis redis://127.0.0.1:6379/0
python -m resilient dlq replay orders --redis redis://127.0.0.1:6379/0 --handler app.fix:handle
python -m resilient dlq purge orders --redis redis://127.0.0.1:6379/0
```

Errors are one line on stderr. Exit codes: 0 done; 1 the work could not be finished (Redis
unreachable, entries still parked after a replay); 2 a usage error (a bad URL, a handler that
cannot be imported).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ._dead_letter import DeadLetter, DeadLetterQueue, ReplayResult
from ._errors import StoreUnavailable

__all__ = ["main"]

_BAR = 30


class _Exit(Exception):
    """Stop with a one-line message and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m resilient", description="Operate resilient's dead-letter queues."
    )
    commands = parser.add_subparsers(dest="group", required=True)
    dlq = commands.add_parser("dlq", help="dead-letter queues")
    actions = dlq.add_subparsers(dest="action", required=True)

    def common(name: str, help: str) -> argparse.ArgumentParser:
        action = actions.add_parser(name, help=help)
        action.add_argument("name", metavar="NAME", help="the queue's name")
        action.add_argument("--redis", metavar="URL", required=True, help="redis://host:port/db")
        action.add_argument("--prefix", default="resilient", help="the store's key prefix")
        return action

    listing = common("list", "show parked entries, oldest first")
    listing.add_argument("--limit", type=int, default=100, help="the most entries (100)")
    common("count", "print the number of parked entries")
    replay = common("replay", "run parked entries through a handler; successes are removed")
    replay.add_argument(
        "--handler",
        metavar="MODULE:FUNCTION",
        help="the fixed handler, e.g. app.orders:handle (required)",
    )
    replay.add_argument("--limit", type=int, default=None, help="the most entries (all)")
    replay.add_argument(
        "--claim-after",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="take over entries held this long by a replay that died (30)",
    )
    common("purge", "delete every parked entry")
    return parser


def _queue(args: argparse.Namespace) -> DeadLetterQueue:
    try:
        import redis
        import redis.backoff
        import redis.retry
    except ImportError:  # pragma: no cover - depends on the environment
        raise _Exit(
            "the Redis client is missing: pip install 'resilient-patterns[redis]'", 2
        ) from None
    from .stores import RedisStore

    try:
        client = redis.Redis.from_url(
            args.redis,
            socket_timeout=5.0,
            socket_connect_timeout=5.0,
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
        )
    except ValueError as error:
        raise _Exit(f"bad --redis URL {args.redis!r}: {error}", 2) from None
    try:
        store = RedisStore(client, prefix=args.prefix)
        return DeadLetterQueue(
            args.name, store=store, claim_after=getattr(args, "claim_after", 30.0)
        )
    except (TypeError, ValueError) as error:
        raise _Exit(str(error), 2) from None


def _handler(spec: str | None) -> Callable[..., Any]:
    if not spec:
        raise _Exit(
            "replay needs --handler MODULE:FUNCTION, the handler to run the entries through", 2
        )
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise _Exit(f"--handler must look like module:function, got {spec!r}", 2)
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as error:
        raise _Exit(f"cannot import the handler module {module_name!r}: {error}", 2) from None
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise _Exit(f"the handler {spec!r} does not exist: no {part!r}", 2) from None
    if not callable(found):
        raise _Exit(f"the handler {spec!r} is not callable", 2)
    return found  # type: ignore[no-any-return]


def _one_line(text: str, width: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _table(entries: list[DeadLetter], out: TextIO) -> None:
    header = ("ID", "ATTEMPTS", "PARKED (UTC)", "FUNCTION", "ERROR", "ARGUMENTS")
    rows = [header]
    for entry in entries:
        arguments = json.dumps(entry.args + ([entry.kwargs] if entry.kwargs else []))
        rows.append(
            (
                entry.id,
                str(entry.attempts),
                time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry.time)),
                _one_line(entry.function, 40),
                _one_line(f"{entry.error_type.rpartition('.')[2]}: {entry.error}", 50),
                _one_line(arguments, 50),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        out.write("  ".join(cells).rstrip())
        out.write("\n")


class _Progress:
    """A plain-text progress bar on one line (redrawn with a carriage return)."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total = max(total, 0)
        self.done = 0
        self.counts = {"replayed": 0, "failed": 0, "invalid": 0}
        self.out = out

    def __call__(self, entry: DeadLetter, outcome: str) -> None:
        self.done += 1
        self.counts[outcome] += 1
        self.draw()

    def draw(self) -> None:
        total = max(self.total, self.done)
        filled = _BAR if total == 0 else _BAR * self.done // total
        self.out.write(
            f"\rreplaying [{'#' * filled}{'.' * (_BAR - filled)}] {self.done}/{total}"
            f"  replayed {self.counts['replayed']}, failed {self.counts['failed']},"
            f" invalid {self.counts['invalid']}"
        )
        self.out.flush()


def _replay(queue: DeadLetterQueue, args: argparse.Namespace, out: TextIO) -> int:
    handler = _handler(args.handler)
    total = queue.count()
    if args.limit is not None:
        total = min(total, args.limit)
    progress = _Progress(total, sys.stderr)
    progress.draw()
    result: ReplayResult
    if inspect.iscoroutinefunction(handler):
        import anyio

        result = anyio.run(lambda: queue.areplay(handler, args.limit, progress=progress))
    else:
        result = queue.replay(handler, args.limit, progress=progress)
    sys.stderr.write("\n")
    out.write(
        f"replayed {result.replayed}, failed {len(result.failed)}, "
        f"invalid {len(result.invalid)}; {queue.count()} still parked\n"
    )
    for entry in result.failed:
        out.write(f"failed {entry.id}: {_one_line(f'{entry.error_type}: {entry.error}', 200)}\n")
    for entry in result.invalid:
        out.write(f"invalid {entry.id}: {_one_line(entry.error, 200)} (kept)\n")
    return 1 if result.failed or result.invalid else 0


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit code."""
    out = out if out is not None else sys.stdout
    args = _parser().parse_args(argv)
    try:
        if getattr(args, "limit", None) is not None and args.limit < 1:
            raise _Exit(f"--limit must be >= 1, got {args.limit}", 2)
        queue = _queue(args)
        if args.action == "list":
            entries = queue.list(args.limit)
            if entries:
                _table(entries, out)
            else:
                out.write(f"no entries parked in {args.name!r}\n")
            return 0
        if args.action == "count":
            out.write(f"{queue.count()}\n")
            return 0
        if args.action == "purge":
            out.write(f"purged {queue.purge()} entries from {args.name!r}\n")
            return 0
        return _replay(queue, args, out)
    except _Exit as error:
        sys.stderr.write(f"error: {error}\n")
        return error.code
    except StoreUnavailable as error:
        sys.stderr.write(f"error: cannot reach Redis at {args.redis}: {error.__cause__ or error}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
