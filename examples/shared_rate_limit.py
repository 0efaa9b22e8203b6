"""One rate limit shared by several processes through Redis.

Four worker processes each try to take 50 requests' worth from one ``TokenBucket`` whose state
lives in Redis: capacity 60, refilled at 1 per second. Together they are allowed about 60, not
4 x 60 -- the limit holds across processes because every decision is one atomic Lua script on
the Redis server, using the server's clock.

Run it against any Redis:

    python examples/shared_rate_limit.py --redis redis://127.0.0.1:6379/0

or set ``REDIS_URL``. It uses keys under the prefix ``resilient-example`` (each with a TTL).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import time
import uuid

from resilient import TokenBucket
from resilient.stores import RedisStore

WORKERS = 4
TRIES = 50
CAPACITY = 60
RATE = 1.0  # tokens a second


def worker(redis_url: str, key: str, results: multiprocessing.Queue[int]) -> None:
    """Tries TRIES times, without waiting; reports how many were allowed."""
    store = RedisStore.from_url(redis_url, prefix="resilient-example", on_error="raise")
    limiter = TokenBucket(rate=RATE, capacity=CAPACITY, store=store, name="shared-api")
    allowed = sum(limiter.try_acquire(key).allowed for _ in range(TRIES))
    results.put(allowed)


def main() -> None:
    parser = argparse.ArgumentParser(description="One rate limit shared through Redis.")
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL"), help="a Redis URL")
    args = parser.parse_args()
    if not args.redis:
        parser.error("give --redis URL or set REDIS_URL")

    key = f"tenant:{uuid.uuid4().hex[:8]}"  # a fresh key, so every run starts full
    # fork starts faster where it exists; every worker builds its own Redis client after it.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    results: multiprocessing.Queue[int] = context.Queue()
    processes = [
        context.Process(target=worker, args=(args.redis, key, results)) for _ in range(WORKERS)
    ]
    started = time.monotonic()
    for process in processes:
        process.start()
    counts = [results.get(timeout=60) for _ in processes]
    elapsed = time.monotonic() - started
    for process in processes:
        process.join(timeout=10)
    total = sum(counts)
    print(f"{WORKERS} processes x {TRIES} tries on {key!r}: allowed {counts} = {total}")
    # The bucket starts with CAPACITY tokens and refills RATE a second while the workers run.
    refilled = math.ceil(elapsed * RATE)
    assert CAPACITY <= total <= CAPACITY + refilled, (total, elapsed)
    print(f"the limit held: {total} allowed of {WORKERS * TRIES} asked for, capacity {CAPACITY}")


if __name__ == "__main__":
    main()
