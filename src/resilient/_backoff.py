"""Backoff schedules: how long to wait before each retry (or before a breaker's next trial).

```python
import random

from resilient import Backoff

backoff = Backoff.exponential(0.1, 10.0, jitter="none")
assert backoff.delay(1) == 0.1 and backoff.delay(3) == 0.4 and backoff.delay(50) == 10.0

jittered = Backoff.exponential(0.1, 10.0, rng=random.Random(7))  # full jitter by default
assert 0.0 <= jittered.delay(3) <= 0.4
```

Jitter follows the AWS Architecture Blog article "Exponential Backoff And Jitter" (Brooker,
2015). With ``base(n)`` the un-jittered delay before retry ``n`` (already capped at
``maximum``):

- ``"none"``: ``base(n)``
- ``"full"``: ``uniform(0, base(n))``
- ``"equal"``: ``base(n) / 2 + uniform(0, base(n) / 2)``
- ``"decorrelated"``: ``min(maximum, uniform(initial, previous * 3))``, ``previous`` starting at
  ``initial`` (it ignores ``base(n)`` except for the cap).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Final, Literal

__all__ = ["JITTERS", "Backoff", "Jitter"]

Jitter = Literal["full", "equal", "decorrelated", "none"]

#: The accepted jitter names.
JITTERS: Final = ("full", "equal", "decorrelated", "none")

_NONE, _FULL, _EQUAL, _DECORRELATED = range(4)
_JITTER_CODES = {"none": _NONE, "full": _FULL, "equal": _EQUAL, "decorrelated": _DECORRELATED}


def _non_negative(value: object, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{argument} must be a number of seconds, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"{argument} must be a finite number >= 0, got {value!r}")
    return value


class Backoff:
    """A schedule of delays, optionally jittered. Build one with a class method.

    `Backoff.exponential`, `Backoff.constant` and `Backoff.linear` are the constructors. A
    Backoff holds no per-call state, so one object can be shared by any number of policies,
    threads and tasks. `delay` gives the delay before retry ``n``; `delays` iterates them.

    Attributes:
        kind: ``"exponential"``, ``"constant"`` or ``"linear"``.
        initial: the first (un-jittered) delay, in seconds.
        maximum: no delay is ever longer than this.
        multiplier: growth factor of an exponential backoff (1.0 otherwise).
        step: increment of a linear backoff (0.0 otherwise).
        jitter: the jitter name.
    """

    __slots__ = (
        "_jitter",
        "_uniform",
        "initial",
        "jitter",
        "kind",
        "maximum",
        "multiplier",
        "step",
    )

    def __init__(
        self,
        kind: str,
        initial: float,
        maximum: float,
        multiplier: float,
        step: float,
        jitter: str,
        rng: random.Random | None,
    ) -> None:
        # Private: the class methods validate their arguments and name them in errors.
        self.kind = kind
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.step = step
        self.jitter = jitter
        self._jitter = _JITTER_CODES[jitter]
        self._uniform = (random if rng is None else rng).uniform

    @staticmethod
    def _check_jitter(jitter: object) -> str:
        if jitter not in _JITTER_CODES:
            raise ValueError(f"jitter must be one of {', '.join(JITTERS)}, got {jitter!r}")
        return str(jitter)

    @staticmethod
    def _check_rng(rng: object) -> random.Random | None:
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random, got {rng!r}")
        return rng

    @classmethod
    def exponential(
        cls,
        initial: float = 0.1,
        maximum: float = 10.0,
        multiplier: float = 2.0,
        jitter: Jitter = "full",
        *,
        rng: random.Random | None = None,
    ) -> Backoff:
        """Delays ``initial * multiplier ** (n - 1)``, capped at ``maximum``, then jittered.

        Args:
            initial: the delay before the first retry, in seconds (before jitter).
            maximum: the cap on every delay, in seconds; must be >= ``initial``.
            multiplier: growth factor between retries; must be >= 1.
            jitter: ``"full"`` (the default), ``"equal"``, ``"decorrelated"`` or ``"none"``.
            rng: the random source for jitter (default: the `random` module's).

        Raises:
            ValueError: an argument is out of range (the message names it).
        """
        initial = _non_negative(initial, "initial")
        maximum = _non_negative(maximum, "maximum")
        if maximum < initial:
            raise ValueError(f"maximum must be >= initial ({initial!r}), got {maximum!r}")
        multiplier = _non_negative(multiplier, "multiplier")
        if multiplier < 1.0:
            raise ValueError(f"multiplier must be >= 1, got {multiplier!r}")
        return cls(
            "exponential",
            initial,
            maximum,
            multiplier,
            0.0,
            cls._check_jitter(jitter),
            cls._check_rng(rng),
        )

    @classmethod
    def constant(
        cls, delay: float, *, jitter: Jitter = "none", rng: random.Random | None = None
    ) -> Backoff:
        """The same ``delay`` before every retry (jittered if asked).

        With ``"decorrelated"`` jitter the cap equals ``delay``, so it behaves like ``"none"``.

        Args:
            delay: seconds to wait before each retry.
            jitter: ``"none"`` (the default), ``"full"``, ``"equal"`` or ``"decorrelated"``.
            rng: the random source for jitter.

        Raises:
            ValueError: ``delay`` is negative or ``jitter`` unknown.
        """
        delay = _non_negative(delay, "delay")
        return cls(
            "constant", delay, delay, 1.0, 0.0, cls._check_jitter(jitter), cls._check_rng(rng)
        )

    @classmethod
    def linear(
        cls,
        initial: float,
        step: float,
        maximum: float,
        *,
        jitter: Jitter = "none",
        rng: random.Random | None = None,
    ) -> Backoff:
        """Delays ``initial + step * (n - 1)``, capped at ``maximum``, then jittered.

        Args:
            initial: the delay before the first retry, in seconds.
            step: seconds added for each further retry.
            maximum: the cap on every delay; must be >= ``initial``.
            jitter: ``"none"`` (the default), ``"full"``, ``"equal"`` or ``"decorrelated"``.
            rng: the random source for jitter.

        Raises:
            ValueError: an argument is out of range (the message names it).
        """
        initial = _non_negative(initial, "initial")
        step = _non_negative(step, "step")
        maximum = _non_negative(maximum, "maximum")
        if maximum < initial:
            raise ValueError(f"maximum must be >= initial ({initial!r}), got {maximum!r}")
        return cls(
            "linear",
            initial,
            maximum,
            1.0,
            step,
            cls._check_jitter(jitter),
            cls._check_rng(rng),
        )

    def base(self, attempt: int) -> float:
        """The un-jittered delay before retry number ``attempt`` (1-based), capped at maximum."""
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt!r}")
        if self.kind == "exponential":
            try:
                value = self.initial * self.multiplier ** (attempt - 1)
            except OverflowError:  # a huge exponent: the cap, unless there is nothing to scale
                return self.maximum if self.initial > 0 else 0.0
        else:
            value = self.initial + self.step * (attempt - 1)
        return value if value < self.maximum else self.maximum

    def delay(self, attempt: int, previous: float | None = None) -> float:
        """The (jittered) delay before retry number ``attempt`` (1-based).

        This is what a circuit breaker uses for its n-th re-open, and what `Retry` uses between
        attempts. Decorrelated jitter depends on the delay before it: pass it as ``previous``
        (without it, ``initial`` is assumed, as for the first retry). The other jitters ignore
        ``previous``.

        Args:
            attempt: the retry number, 1 for the delay after the first failure.
            previous: the previous delay, for ``"decorrelated"`` jitter.

        Returns:
            Seconds to wait, never more than ``maximum`` and never negative.
        """
        jitter = self._jitter
        if jitter == _DECORRELATED:
            if attempt < 1:
                raise ValueError(f"attempt must be >= 1, got {attempt!r}")
            low = self.initial
            high = 3.0 * (low if previous is None or previous < low else previous)
            value = self._uniform(low, high)
            maximum = self.maximum
            return value if value < maximum else maximum
        base = self.base(attempt)
        if jitter == _NONE:
            return base
        if jitter == _FULL:
            return self._uniform(0.0, base)
        half = base / 2.0
        return half + self._uniform(0.0, half)

    def delays(self) -> Iterator[float]:
        """An endless iterator of delays: before retry 1, 2, 3, ...

        Each call starts a fresh sequence (decorrelated jitter chains each delay to the one
        before it within the sequence).
        """
        attempt = 1
        previous: float | None = None
        delay = self.delay
        while True:
            previous = delay(attempt, previous)
            yield previous
            attempt += 1

    def __repr__(self) -> str:
        if self.kind == "constant":
            return f"Backoff.constant({self.initial!r}, jitter={self.jitter!r})"
        if self.kind == "linear":
            return (
                f"Backoff.linear({self.initial!r}, {self.step!r}, {self.maximum!r}, "
                f"jitter={self.jitter!r})"
            )
        return (
            f"Backoff.exponential({self.initial!r}, {self.maximum!r}, "
            f"multiplier={self.multiplier!r}, jitter={self.jitter!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Backoff):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[object, ...]:
        return (self.kind, self.initial, self.maximum, self.multiplier, self.step, self.jitter)
