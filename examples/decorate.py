"""Decorate a function: retry with backoff, a deadline and a circuit breaker.

Run it: ``python examples/decorate.py``. It prints what happened and exits 0.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel

import resilient
from resilient import Backoff, CircuitBreaker, CircuitOpenError, Pipeline, Retry, Timeout

calls = {"flaky": 0}


# One policy as a decorator: up to 4 attempts on ConnectionError, short jittered backoff.
@resilient.retry(on=ConnectionError, attempts=4, backoff=Backoff.exponential(0.01, 0.05))
def flaky() -> str:
    calls["flaky"] += 1
    if calls["flaky"] < 3:
        raise ConnectionError("not yet")
    return "ok"


# Several policies: the first is outermost. A 5 s deadline around retries around a breaker.
breaker = CircuitBreaker("inventory", consecutive_failures=3, open_for=30.0)
guarded = Pipeline(
    Timeout(5.0),
    Retry(on=ConnectionError, attempts=2, backoff=Backoff.constant(0.01)),
    breaker,
)


@guarded
async def stock(sku: str) -> int:
    await anyio.lowlevel.checkpoint()
    raise ConnectionError(f"inventory is down ({sku})")


async def main() -> None:
    for _ in range(2):  # 2 calls x 2 attempts: the breaker opens after 3 failures
        try:
            await stock("sku-1")
        except (ConnectionError, CircuitOpenError) as error:
            print(f"stock: {type(error).__name__}: {error}")
    try:
        await stock("sku-1")
    except CircuitOpenError as error:
        print(f"stock: refused without calling; retry after {error.retry_after:.1f}s")


if __name__ == "__main__":
    print("flaky() ->", flaky(), f"after {calls['flaky']} attempts")
    anyio.run(main)
    assert breaker.state is resilient.CircuitState.OPEN
    print("breaker:", breaker.state.name)
