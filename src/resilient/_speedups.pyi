"""Types of the optional C extension (see _speedups.c)."""

from collections.abc import Callable, Iterable
from typing import Any

class GCRA:
    """One token bucket's decisions over a MemoryStore (see resilient.stores._memory)."""

    tat: int

    def __init__(
        self,
        *,
        interval: int,
        tolerance: int,
        capacity: int,
        tat: int,
        decision: type[tuple[Any, ...]],
        lock: Any,
        data: dict[Any, list[Any]],
        insert: Callable[[Any, list[Any]], None],
        binding: object,
        check_cost: Callable[[object], int],
        monotonic: Callable[[], float] | None,
        honest_wait: Callable[[float, int, int], float],
        hub: Any,
        denied: Callable[[str, int, float], None],
        storage_key: Callable[[str], str],
    ) -> None: ...
    def try_acquire(self, key: str = "", cost: int = 1) -> Any:
        """Take ``cost`` units for ``key`` if they are available now; never waits."""
    def decide(self, key: str, cost: int, /) -> Any:
        """The decision, without the event."""

class RetryCall:
    """A function decorated with a retry (see resilient._retry.Retry._wrap_sync)."""

    def __init__(
        self,
        *,
        fn: Callable[..., Any],
        slow: Callable[..., Any],
        run: Callable[..., Any],
        policy: object,
        name: str,
        key: tuple[str, str],
        hub: Any,
        system: bool,
        timed: Callable[..., Any],
        counted: Callable[..., Any],
        clocked: Callable[..., Any],
        fold: Callable[[tuple[str, str]], None],
        fold_at: int,
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, instance: object, owner: type | None = None) -> Any: ...
    def __reduce__(self) -> str: ...

class Durations:
    """Durations in nanoseconds waiting for a histogram's fold (see CallSink.nanos)."""

    def append(self, nanoseconds: int, /) -> None:
        """Add one duration (int nanoseconds)."""
    def extend(self, durations: Iterable[int], /) -> None:
        """Add each of an iterable of durations."""
    def drain(self, bounds: tuple[int, ...], /) -> tuple[list[int], int, int]:
        """Take every duration out: (counts at most each bound, how many, their sum)."""
    def __len__(self) -> int: ...

class Steps:
    """The claim and complete steps of idempotency records in a MemoryStore."""

    def __init__(
        self,
        *,
        binding: object,
        store: Any,
        lock: Any,
        monotonic: Callable[[], float] | None,
        claimed: tuple[int, None],
        reused: tuple[int, None],
        done: int,
        in_progress: int,
    ) -> None: ...
    def claim(self, key: str, owner: Any, fingerprint: Any, lease_ms: int, /) -> tuple[int, Any]:
        """Claim ``key`` for ``owner`` with a lease, or report what holds it."""
    def complete(self, key: str, owner: Any, result: bytes, ttl_ms: int, /) -> bool:
        """Store ``result`` for ``ttl_ms`` if ``owner`` still holds a live lease on ``key``."""

def held_as_they_are(values: tuple[Any, ...], /) -> bool:
    """Whether an exact fingerprint holds these argument values as they are."""
