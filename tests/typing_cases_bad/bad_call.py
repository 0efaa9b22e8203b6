"""Must FAIL mypy: decorated functions still reject arguments of the wrong type."""

from __future__ import annotations

import resilient


@resilient.Pipeline()
def takes_int(x: int) -> int:
    return x


takes_int("not an int")  # error: arg-type


@resilient.Pipeline()
async def takes_int_async(x: int) -> int:
    return x


async def main() -> None:
    await takes_int_async("not an int")  # error: arg-type
