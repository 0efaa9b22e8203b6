"""Must FAIL mypy: a decorated function still rejects arguments of the wrong type."""

from __future__ import annotations

import resilient


@resilient.Pipeline()
def takes_int(x: int) -> int:
    return x


takes_int("not an int")
