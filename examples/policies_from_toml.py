"""Policies from a TOML file: ``resilient.config.load_policies``.

``examples/policies.toml`` names two pipelines. This script loads them, shows what was built,
and uses them: ``inventory`` retries a flaky call, ``search`` refuses a burst above its capacity.
A mistake in the file is a ``pydantic.ValidationError`` that names the path of the bad value.

Run it: ``python examples/policies_from_toml.py [path/to/policies.toml]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pydantic

from resilient import Bulkhead, CircuitBreaker, RateLimitedError, Retry, Timeout, TokenBucket
from resilient.config import load_policies

HERE = Path(__file__).resolve().parent


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "policies.toml"
    pipelines = load_policies(path)
    inventory, search = pipelines["inventory"], pipelines["search"]
    print("inventory:", [type(policy).__name__ for policy in inventory.policies])
    assert inventory.get(Timeout).seconds == 2.0
    assert inventory.get(Retry).attempts_limit == 3
    assert inventory.get(CircuitBreaker).name == "inventory"
    assert inventory.get(Bulkhead).max_concurrent == 16

    attempts = 0

    @inventory
    def stock(sku: str) -> int:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("inventory is restarting")
        return 7

    print("stock('sku-1') ->", stock("sku-1"), f"after {attempts} attempts")

    limiter = search.get(TokenBucket)
    assert limiter is not None
    assert limiter.capacity == 5
    outcomes = []
    for _ in range(7):
        try:
            search.call(lambda: "results")
            outcomes.append("ok")
        except RateLimitedError as error:
            outcomes.append(f"429 (retry after {error.retry_after * 1000:.0f} ms)")
    print("search x7:", outcomes)
    assert outcomes[:5] == ["ok"] * 5
    assert outcomes[5].startswith("429")

    try:
        load_policies({"inventory": {"retry": {"attempts": 0, "backof": {}}}})
    except pydantic.ValidationError as error:
        print("a bad file is refused:", [problem["loc"] for problem in error.errors()])


if __name__ == "__main__":
    main()
