"""Fuzzing the key helpers: what a client sends must never break a key or its store.

`storage_key` (any str: surrogates, braces, 10 KB), `client_address` (whatever a server puts
in ``scope["client"]``), `forwarded_client_address` (any ``X-Forwarded-For`` bytes) and
`header_key` (any header name and value): no unhandled exception, and the documented result.
"""

from __future__ import annotations

import ipaddress
import re
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient.integrations.asgi import client_address, forwarded_client_address, header_key
from resilient.stores._keys import storage_key

from ._models_support import bounded, record

HEX64 = re.compile(r"[0-9a-f]{64}")
VERBATIM = re.compile(r"[!-z|~]{1,64}")

keys = st.one_of(
    st.text(max_size=80),
    st.text(string.printable, max_size=70),
    st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    st.text(min_size=500, max_size=3000),
)


@given(key=keys)
@bounded(150)
def test_fuzz_storage_key(key: str) -> None:
    stored = storage_key(key)
    if stored == key:
        # Verbatim only when harmless, and never something that looks like a digest.
        assert key == "" or VERBATIM.fullmatch(key)
        assert not HEX64.fullmatch(key)
    else:
        assert HEX64.fullmatch(stored)
        assert not (key == "" or VERBATIM.fullmatch(key)) or HEX64.fullmatch(key)
    assert "{" not in stored
    assert "}" not in stored
    assert len(stored) <= 64
    record("test_fuzz_storage_key", "storage_key", inputs=1)


@given(key=st.integers() | st.binary() | st.none() | st.floats())
@bounded(30)
def test_fuzz_storage_key_refuses_non_strings(key: object) -> None:
    with pytest.raises(TypeError, match="key"):
        storage_key(key)  # type: ignore[arg-type]
    record("test_fuzz_storage_key_refuses_non_strings", "storage_key", inputs=1)


clients = st.one_of(
    st.none(),
    st.tuples(st.text(max_size=40), st.integers(-1, 70000)),
    st.lists(st.text(max_size=10), min_size=1, max_size=2),
    st.just(()),
)

# X-Forwarded-For values: real addresses, addresses with ports, and junk, comma separated.
entries = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=4).map(lambda a: f"{a}:{8080}"),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]:443"),
    st.text(string.printable, max_size=12),
    st.binary(max_size=12).map(lambda b: b.decode("latin-1")),
)
xff = st.lists(entries, max_size=5).map(lambda parts: ",".join(parts).encode("latin-1"))


def scope_with(headers: list[tuple[bytes, bytes]], client: Any) -> dict[str, Any]:
    return {"type": "http", "headers": headers, "client": client}


@given(client=clients)
@bounded(60)
def test_fuzz_client_address(client: Any) -> None:
    key = client_address(scope_with([], client))
    assert isinstance(key, str)
    assert key == ("" if not client else str(client[0]))
    record("test_fuzz_client_address", "client_address", inputs=1)


@given(
    values=st.lists(xff | st.binary(max_size=30), max_size=3),
    client=clients,
    hops=st.integers(1, 4),
)
@bounded(200)
def test_fuzz_forwarded_client_address(values: list[bytes], client: Any, hops: int) -> None:
    scope = scope_with([(b"x-forwarded-for", v) for v in values], client)
    key = forwarded_client_address(hops)(scope)
    fallback = client_address(scope)
    assert isinstance(key, str)
    if key != fallback:
        assert str(ipaddress.ip_address(key)) == key  # a normalised address, nothing else
        joined = b", ".join(values).decode("latin-1").split(",")
        assert len(joined) >= hops
    record("test_fuzz_forwarded_client_address", "forwarded_client_address", inputs=1)


@given(hops=st.integers(-3, 0) | st.floats() | st.text(max_size=3) | st.booleans())
@bounded(30)
def test_fuzz_forwarded_client_address_refuses_bad_hops(hops: object) -> None:
    with pytest.raises((TypeError, ValueError), match="trusted_proxies"):
        forwarded_client_address(hops)  # type: ignore[arg-type]
    record("test_fuzz_forwarded_client_address_refuses_bad_hops", "arguments", inputs=1)


@given(
    name=st.text(max_size=20),
    headers=st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=30)), max_size=4),
)
@bounded(150)
def test_fuzz_header_key(name: str, headers: list[tuple[bytes, bytes]]) -> None:
    try:
        key_function = header_key(name)
    except ValueError as exc:
        assert "name" in str(exc)  # noqa: PT017
        record("test_fuzz_header_key", "header_key", inputs=1)
        return
    wanted = name.lower().encode("ascii")
    headers = [*headers, (wanted, b"value")] if headers and headers[0][1] else headers
    key = key_function(scope_with(headers, None))
    found = [v for k, v in headers if k.lower() == wanted]
    if not found or not b", ".join(found):
        assert key is None
    else:
        assert key == b", ".join(found).decode("latin-1")
    record("test_fuzz_header_key", "header_key", inputs=1)
