"""How a user-supplied key is stored: verbatim when harmless, else as a SHA-256 digest.

A key that reaches a store may come from outside (a client address, an API key, an
idempotency key header). Stored verbatim, a ``}`` would cut a Redis Cluster ``{hash tag}``
short and a 100 KB header would make a 100 KB Redis key or memory-store entry. So every store
and every pattern that keeps per-key state passes the key through `storage_key` first:

- a key of at most 64 printable ASCII characters without ``{``, ``}`` or spaces is kept as it
  is (readable in ``redis-cli`` and in the memory store);
- any other key becomes the 64-character lowercase hex SHA-256 digest of its UTF-8 bytes.

A key that already looks like such a digest (exactly 64 lowercase hex characters) is digested
too, so a client cannot pick a key equal to another key's digest and share its state: the
verbatim and digested forms never meet.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["MAX_VERBATIM", "recent_storage_key", "storage_key"]

#: The longest key stored verbatim.
MAX_VERBATIM = 64

# Printable ASCII (0x21-0x7e: no space, no control characters) except "{" (0x7b) and "}" (0x7d).
_verbatim = re.compile(r"[!-z|~]{0,63}").fullmatch
_verbatim_64 = re.compile(r"[!-z|~]{64}").fullmatch
_digest_like = re.compile(r"[0-9a-f]{64}").fullmatch


def storage_key(key: str) -> str:
    """The form in which ``key`` is stored: itself when harmless, else its SHA-256 hex digest.

    Args:
        key: a user-supplied key; it must be a `str`.

    Returns:
        ``key`` itself when it has at most 64 printable ASCII characters and no ``{``, ``}``
        or space (and is not itself 64 lowercase hex characters); otherwise
        ``hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()``.

    Raises:
        TypeError: ``key`` is not a `str`.
    """
    if type(key) is str:
        stored = _recent.get(key)
        if stored is not None:
            return stored
    elif not isinstance(key, str):
        raise TypeError(f"key must be a str, got {type(key).__name__} {key!r:.100}")
    else:
        key = str.__str__(key)  # a plain str: a subclass may hash or compare differently
        stored = _recent.get(key)
        if stored is not None:
            return stored
    if _verbatim(key) is not None or (_verbatim_64(key) is not None and _digest_like(key) is None):
        stored = key
    else:
        stored = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    if len(key) <= MAX_VERBATIM:  # remember the stored form of short keys only
        if len(_recent) >= _RECENT_SIZE:
            _recent.clear()
        _recent[key] = stored
    return stored


# The stored form of recently seen short keys (a key is looked up once, not matched again on
# every call). Bounded: cleared when full. Only exact ``str`` keys are looked up in it.
_RECENT_SIZE = 4096
_recent: dict[str, str] = {}

#: ``recent_storage_key(key)``: the stored form of ``key`` if it was seen recently, else None.
#: For hot paths that inline the common case of `storage_key` (``key`` must be an exact str).
recent_storage_key = _recent.get
