"""Key functions for `RateLimitMiddleware`: who is asking, read from the ASGI scope.

A key function takes the ASGI ``scope`` and returns the rate-limit key as a ``str``, or ``None``
to exempt the request from the limit.

- `client_address`: the socket peer. Right when clients connect to the server directly.
- `forwarded_client_address`: the address a fixed number of proxies back in
  ``X-Forwarded-For``. Right behind load balancers and reverse proxies that you run.
- `header_key`: the value of a request header, such as an API key.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from ..._rate_limit import _check_int
from ._problem import Scope, header_value

__all__ = ["client_address", "forwarded_client_address", "header_key"]

_XFF = b"x-forwarded-for"


def client_address(scope: Scope) -> str:
    """The socket peer's address (``scope["client"][0]``), as the rate-limit key.

    When the server does not know the peer (``scope["client"]`` is ``None``, as over a Unix
    socket), the key is ``""``: all such requests share one limit rather than escape it.
    Behind a proxy every request comes from the proxy; use `forwarded_client_address` there.
    """
    client = scope.get("client")
    if not client:
        return ""
    return str(client[0])


def _address(entry: str) -> str | None:
    """``entry`` as a normalised IP address, or None when it is not one.

    Accepts ``1.2.3.4``, ``2001:db8::1`` and the forms with a port some proxies write
    (``1.2.3.4:5678``, ``[2001:db8::1]:5678``).
    """
    entry = entry.strip()
    try:
        return str(ipaddress.ip_address(entry))
    except ValueError:
        pass
    if entry.startswith("["):
        host, bracket, port = entry[1:].partition("]")
        if not bracket or not port.startswith(":"):
            return None
        port = port[1:]
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        return None
    if not (1 <= len(port) <= 5 and port.isascii() and port.isdigit()):
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def forwarded_client_address(trusted_proxies: int = 1) -> Callable[[Scope], str]:
    """A key function: the client address ``trusted_proxies`` hops back in ``X-Forwarded-For``.

    Each proxy appends the address it received the request from, so with ``trusted_proxies``
    proxies of your own in front of the app, the entry that many places from the end is the
    one your outermost proxy saw, and everything left of it is whatever the client claimed.
    Set ``trusted_proxies`` to exactly the number of proxies you run: more lets a client pick
    its own key by sending a forged header.

    Repeated ``X-Forwarded-For`` lines are joined in order. When the header is missing, has
    fewer entries than ``trusted_proxies``, or that entry is not an IP address, the key falls
    back to the socket peer (`client_address`). Addresses are normalised (``::0001`` and
    ``::1`` are one key).

    Args:
        trusted_proxies: how many proxies you run in front of the app (an int >= 1).

    Raises:
        TypeError: ``trusted_proxies`` is not an int.
        ValueError: ``trusted_proxies`` is below 1.
    """
    hops = _check_int(trusted_proxies, "trusted_proxies")

    def forwarded(scope: Scope) -> str:
        raw = header_value(scope, _XFF)
        if raw is None:
            return client_address(scope)
        entries = raw.decode("latin-1").split(",")
        if len(entries) < hops:
            return client_address(scope)
        address = _address(entries[-hops])
        return address if address is not None else client_address(scope)

    forwarded.__qualname__ = f"forwarded_client_address({hops})"
    return forwarded


def header_key(name: str) -> Callable[[Scope], str | None]:
    """A key function: the value of the request header ``name`` (e.g. ``"x-api-key"``).

    A request without the header (or with an empty one) gets ``None``, which **exempts** it
    from the limit: use it where something in front of the limit (authentication) already
    refuses requests without the header, or pass your own function that falls back to
    `client_address`. Repeated lines are joined with ``", "``. Long or unusual values are fine
    as keys: `resilient.stores.RedisStore` stores them hashed.

    Args:
        name: the header name, any case.

    Raises:
        TypeError: ``name`` is not a str.
        ValueError: ``name`` is empty or not a valid header name.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {name!r}")
    if not name or not all(c.isascii() and (c.isalnum() or c in "!#$%&'*+-.^_`|~") for c in name):
        raise ValueError(f"name must be a header name (an HTTP token), got {name!r}")
    wanted = name.lower().encode("ascii")

    def by_header(scope: Scope) -> str | None:
        raw = header_value(scope, wanted)
        if not raw:
            return None
        return raw.decode("latin-1")

    by_header.__qualname__ = f"header_key({name!r})"
    return by_header
