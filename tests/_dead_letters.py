"""Message handlers for the dead-letter tests, importable by the CLI in a subprocess."""

from __future__ import annotations

from pydantic import BaseModel

#: The order ids that the first, buggy handler cannot process.
POISON = frozenset({3, 17, 29, 41, 58, 77, 96})


class OrderPlaced(BaseModel):
    """A message from the queue."""

    order_id: int
    amount: float


class OrderPlacedV2(BaseModel):
    """The message as a later release expects it: ``amount`` was renamed to ``total``."""

    order_id: int
    total: float


def buggy(message: OrderPlaced) -> str:
    """The first release: some orders make it fail."""
    if message.order_id in POISON:
        raise ValueError(f"cannot process order {message.order_id}")
    return f"processed {message.order_id}"


def fixed(message: OrderPlaced) -> str:
    """The release with the fix deployed: processes every order."""
    return f"processed {message.order_id}"


async def afixed(message: OrderPlaced) -> str:
    """The fix, as a coroutine function."""
    return f"processed {message.order_id}"


def renamed(message: OrderPlacedV2) -> str:
    """A handler whose message model no longer accepts the parked payloads."""
    return f"processed {message.order_id}"


not_callable = 42
