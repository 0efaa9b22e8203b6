"""Key helpers: the socket peer, X-Forwarded-For with a fixed number of trusted proxies, headers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient.integrations.asgi import client_address, forwarded_client_address, header_key


def scope(*headers: tuple[bytes, bytes], client: Any = ("10.0.0.9", 5000)) -> dict[str, Any]:
    return {"type": "http", "headers": list(headers), "client": client}


def test_client_address_is_the_socket_peer() -> None:
    assert client_address(scope()) == "10.0.0.9"
    assert client_address(scope((b"x-forwarded-for", b"1.2.3.4"))) == "10.0.0.9"


def test_without_a_peer_address_requests_share_one_key_instead_of_escaping() -> None:
    assert client_address(scope(client=None)) == ""
    assert client_address({"type": "http", "headers": []}) == ""


def test_forwarded_address_is_taken_exactly_trusted_proxies_hops_back() -> None:
    xff = (b"x-forwarded-for", b"6.6.6.6, 1.2.3.4, 10.0.0.2")
    assert forwarded_client_address()(scope(xff)) == "10.0.0.2"
    assert forwarded_client_address(2)(scope(xff)) == "1.2.3.4"
    assert forwarded_client_address(3)(scope(xff)) == "6.6.6.6"


def test_repeated_forwarded_for_lines_are_joined_in_order() -> None:
    lines = (
        (b"x-forwarded-for", b"6.6.6.6, 1.2.3.4"),
        (b"x-forwarded-for", b"10.0.0.2"),
    )
    assert forwarded_client_address(2)(scope(*lines)) == "1.2.3.4"


def test_a_client_cannot_claim_more_hops_than_configured() -> None:
    # A forged entry on the left is never reached with one trusted proxy.
    forged = (b"x-forwarded-for", b"9.9.9.9, 9.9.9.8, 203.0.113.7")
    assert forwarded_client_address(1)(scope(forged)) == "203.0.113.7"


@pytest.mark.parametrize(
    "value",
    [b"", b"unknown", b"not-an-ip", b"1.2.3.4.5", b"1.2.3.4:x", b"[::1", b", ,", b"\xff\xfe"],
)
def test_a_malformed_entry_falls_back_to_the_peer(value: bytes) -> None:
    assert forwarded_client_address()(scope((b"x-forwarded-for", value))) == "10.0.0.9"


def test_too_few_entries_or_none_fall_back_to_the_peer() -> None:
    assert forwarded_client_address(2)(scope((b"x-forwarded-for", b"1.2.3.4"))) == "10.0.0.9"
    assert forwarded_client_address()(scope()) == "10.0.0.9"
    assert forwarded_client_address()(scope(client=None)) == ""


def test_addresses_are_normalised_and_ports_dropped() -> None:
    key = forwarded_client_address()
    assert key(scope((b"x-forwarded-for", b"::0001"))) == "::1"
    assert key(scope((b"x-forwarded-for", b" 2001:DB8::1 "))) == "2001:db8::1"
    assert key(scope((b"x-forwarded-for", b"1.2.3.4:5678"))) == "1.2.3.4"
    assert key(scope((b"x-forwarded-for", b"[2001:db8::1]:443"))) == "2001:db8::1"


@given(st.binary(max_size=60))
def test_any_forwarded_for_value_gives_a_string_key(value: bytes) -> None:
    result = forwarded_client_address(2)(scope((b"x-forwarded-for", value)))
    assert isinstance(result, str)
    assert result


def test_forwarded_client_address_validates_trusted_proxies() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        forwarded_client_address(0)
    with pytest.raises(TypeError, match="trusted_proxies"):
        forwarded_client_address("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="trusted_proxies"):
        forwarded_client_address(True)


def test_header_key_reads_the_header_and_exempts_requests_without_it() -> None:
    key = header_key("X-API-Key")
    assert key(scope((b"x-api-key", b"secret-1"))) == "secret-1"
    assert key(scope()) is None
    assert key(scope((b"x-api-key", b""))) is None
    assert key(scope((b"x-api-key", b"a"), (b"x-api-key", b"b"))) == "a, b"


def test_header_key_validates_the_name() -> None:
    with pytest.raises(TypeError, match="name"):
        header_key(b"x-api-key")  # type: ignore[arg-type]
    for bad in ("", "x api", "x:y", "caf\u00e9"):
        with pytest.raises(ValueError, match="name"):
            header_key(bad)
