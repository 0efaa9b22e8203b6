"""The ``grpc-timeout`` header format, read by `DeadlineMiddleware` and written by the transports.

gRPC over HTTP/2 sends a request's remaining time as ``TimeoutValue TimeoutUnit``: one to eight
ASCII digits, then one of ``H`` (hours), ``M`` (minutes), ``S`` (seconds), ``m`` (milliseconds),
``u`` (microseconds) or ``n`` (nanoseconds), e.g. ``487m``.
"""

from __future__ import annotations

import math

__all__ = ["format_grpc_timeout", "parse_grpc_timeout"]

_UNITS = {
    ord("H"): 3600.0,
    ord("M"): 60.0,
    ord("S"): 1.0,
    ord("m"): 1e-3,
    ord("u"): 1e-6,
    ord("n"): 1e-9,
}
_MAX_VALUE = 99_999_999  # eight digits
# Coarser units in the order the writer tries them once milliseconds need more than 8 digits.
_COARSER = ((1, "S"), (60, "M"), (3600, "H"))


def parse_grpc_timeout(value: bytes | str) -> float | None:
    """Seconds in a ``grpc-timeout`` value, or ``None`` when it is malformed.

    Exactly one to eight ASCII digits and one unit letter, nothing else (no sign, no spaces, no
    decimal point).
    """
    raw = value.encode("latin-1", "replace") if isinstance(value, str) else value
    if not 2 <= len(raw) <= 9:
        return None
    unit = _UNITS.get(raw[-1])
    digits = raw[:-1]
    if unit is None or not all(48 <= byte <= 57 for byte in digits):
        return None
    return int(digits) * unit


def format_grpc_timeout(seconds: float) -> str:
    """``seconds`` as a ``grpc-timeout`` value, rounded down to whole milliseconds.

    Rounding down never hands the next hop more time than is left. Past what eight digits of
    milliseconds can say (about 27.8 hours) the value is written in seconds, minutes or hours,
    still rounded down; a negative or NaN value is ``0m``.
    """
    if not seconds > 0:  # also catches NaN
        return "0m"
    # Whole nanoseconds first: 0.57 * 1000 is 569.999..., and a value read from ``570m`` must
    # be written back as ``570m``.
    millis = round(seconds * 1e9) // 1_000_000 if math.isfinite(seconds) else math.inf
    if millis <= _MAX_VALUE:
        return f"{int(millis)}m"
    for size, unit in _COARSER:
        count = seconds // size if math.isfinite(seconds) else math.inf
        if count <= _MAX_VALUE:
            return f"{int(count)}{unit}"
    return f"{_MAX_VALUE}H"
