"""Idempotency records in Redis: one hash per key, one Lua script per step.

The steps are ``_scripts/idempotency_claim.lua``, ``idempotency_complete.lua`` and
``idempotency_release.lua`` (plus ``idempotency_read.lua`` for inspection), each one atomic
round trip through `RedisStore._eval` / ``_aeval`` (EVALSHA, EVAL once after NOSCRIPT; Redis
and socket errors become `resilient.StoreUnavailable`). A first call costs two round trips
(claim, complete), a replay one (the claim returns the stored result).

Keys are ``<prefix>:idem:<namespace>:<sha256(key)>``: a hostile key can neither bloat Redis nor
reach another key, and the record is a single key, so it needs no hash tag on Redis Cluster.
A pending record expires with its lease and a done one with its TTL (both ``PEXPIRE``, set in
the script that writes them), so every key has a TTL.

Store errors are never turned into an ``on_error`` decision here: idempotency fails closed, so
`StoreUnavailable` reaches the policy, which does not run the function.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from .._idempotency import CLAIMED, DONE, IN_PROGRESS, REUSED, new_owner

if TYPE_CHECKING:
    from ._redis import RedisStore

__all__: list[str] = []

_CLAIMED = (CLAIMED, None)
_REUSED = (REUSED, None)


def _bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _claimed(reply: Any) -> tuple[int, Any]:
    status = reply[0]
    if status == CLAIMED:
        return _CLAIMED
    if status == DONE:
        return (DONE, _bytes(reply[1]))
    if status == IN_PROGRESS:
        return (IN_PROGRESS, reply[1] / 1000)
    return _REUSED


def _record(reply: Any) -> tuple[str, str, bytes | None] | None:
    if not reply:
        return None
    done = _text(reply[0]) == "d"
    return ("done" if done else "pending", _text(reply[1]), _bytes(reply[2]) if done else None)


class _RedisIdempotency:
    """The four idempotency steps through one `RedisStore`."""

    __slots__ = ("_claim", "_complete", "_prefix", "_read", "_release", "_store")

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._prefix = f"{store.prefix}:idem:"
        self._claim = store._script("idempotency_claim")
        self._complete = store._script("idempotency_complete")
        self._release = store._script("idempotency_release")
        self._read = store._script("idempotency_read")

    suspends = True

    #: Keys and fingerprints are SHA-256 digests (see `IdempotencyBackend`).
    exact = False

    def storage_key(self, namespace: str, key: str) -> str:
        """``<prefix>:idem:<namespace>:<sha256(key)>``."""
        return f"{self._prefix}{namespace}:{hashlib.sha256(key.encode()).hexdigest()}"

    def key_prefix(self, namespace: str) -> str:
        """``<prefix>:idem:<namespace>:``, what `storage_key` puts before the digest."""
        return f"{self._prefix}{namespace}:"

    def new_owner(self) -> str:
        """A random token (128 bits): unique across processes and hosts."""
        return new_owner()

    def claim(self, key: str, owner: str, fingerprint: str, lease_ms: int) -> tuple[int, Any]:
        """Claim ``key`` (see ``idempotency_claim.lua``)."""
        return _claimed(self._store._eval(self._claim, 1, key, owner, fingerprint, lease_ms))

    async def aclaim(
        self, key: str, owner: str, fingerprint: str, lease_ms: int
    ) -> tuple[int, Any]:
        """Async `claim`."""
        reply = await self._store._aeval(self._claim, 1, key, owner, fingerprint, lease_ms)
        return _claimed(reply)

    def complete(self, key: str, owner: str, result: bytes, ttl_ms: int) -> bool:
        """Store ``result`` if ``owner`` still holds the lease (compare-and-set)."""
        # redis-py sends bytes arguments as they are; the script only stores them.
        args: Any = (owner, result, ttl_ms)
        return bool(self._store._eval(self._complete, 1, key, *args) == 1)

    async def acomplete(self, key: str, owner: str, result: bytes, ttl_ms: int) -> bool:
        """Async `complete`."""
        args: Any = (owner, result, ttl_ms)
        return bool(await self._store._aeval(self._complete, 1, key, *args) == 1)

    def release(self, key: str, owner: str) -> bool:
        """Delete ``key`` if ``owner`` still holds its lease."""
        return bool(self._store._eval(self._release, 1, key, owner) == 1)

    async def arelease(self, key: str, owner: str) -> bool:
        """Async `release`."""
        return bool(await self._store._aeval(self._release, 1, key, owner) == 1)

    def read(self, key: str) -> tuple[str, str, bytes | None] | None:
        """``(state, fingerprint, result)`` of the record, or None."""
        return _record(self._store._eval(self._read, 1, key))

    async def aread(self, key: str) -> tuple[str, str, bytes | None] | None:
        """Async `read`."""
        return _record(await self._store._aeval(self._read, 1, key))
