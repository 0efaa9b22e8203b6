"""Coverage-guided fuzzing (atheris, libFuzzer) of every parser that reads bytes from a request.

Run by ``test_fuzz_atheris.py`` in a subprocess, since libFuzzer ends the process when it is
done: ``python atheris_parsers.py -runs=N``. Each input is split by its first byte into one
target: the ``grpc-timeout``, Envoy milliseconds and ``x-request-timeout`` parsers, the
``Idempotency-Key`` parser, ``forwarded_client_address`` over ``X-Forwarded-For`` values,
``storage_key`` and ``retry_after``. A target may return None for malformed input; any
exception, or a value outside what the parser promises, is a crash that libFuzzer reports
(exit status other than 0, the input written to the working directory).
"""

from __future__ import annotations

import math
import sys

import atheris

with atheris.instrument_imports():
    import httpx

    from resilient.integrations._timeout_header import parse_grpc_timeout
    from resilient.integrations.asgi import forwarded_client_address
    from resilient.integrations.asgi._deadline import parse_milliseconds, parse_seconds
    from resilient.integrations.asgi._idempotency import parse_idempotency_key
    from resilient.integrations.httpx import retry_after
    from resilient.stores._keys import storage_key

TWO_HOPS = forwarded_client_address(2)


def _seconds(value: float | None) -> None:
    if value is not None and not (value >= 0.0 and not math.isnan(value)):
        raise AssertionError(f"a deadline parser returned {value!r}")


def fuzz(data: bytes) -> None:
    if not data:
        return
    target, raw = data[0] % 7, data[1:]
    if target == 0:
        _seconds(parse_grpc_timeout(raw))
        _seconds(parse_grpc_timeout(raw.decode("latin-1")))
    elif target == 1:
        _seconds(parse_milliseconds(raw))
    elif target == 2:
        _seconds(parse_seconds(raw))
    elif target == 3:
        key = parse_idempotency_key(raw)
        if key is not None and not (isinstance(key, str) and 1 <= len(key) <= 255):
            raise AssertionError(f"Idempotency-Key parser returned {key!r}")
    elif target == 4:
        values = raw.split(b"\n")[:4]
        scope = {
            "type": "http",
            "headers": [(b"x-forwarded-for", value) for value in values],
            "client": ("127.0.0.1", 1234),
        }
        if not isinstance(TWO_HOPS(scope), str):
            raise AssertionError("forwarded_client_address returned a non-string")
    elif target == 5:
        stored = storage_key(raw.decode("utf-8", "surrogateescape"))
        if "{" in stored or "}" in stored or len(stored) > 64:
            raise AssertionError(f"storage_key returned {stored!r}")
    else:
        text = raw.decode("latin-1")
        try:
            response = httpx.Response(429, headers={"retry-after": text})
        except (ValueError, TypeError):  # httpx refuses the header itself, not ours to read
            return
        _seconds(retry_after(response))


def main() -> None:
    atheris.Setup(sys.argv, fuzz)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
