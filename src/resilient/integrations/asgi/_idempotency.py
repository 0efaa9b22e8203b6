"""`IdempotencyMiddleware`: the Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header).

```python
from resilient.integrations.asgi import IdempotencyMiddleware
from resilient.stores import MemoryStore


async def app(scope, receive, send):  # any ASGI app
    ...


app = IdempotencyMiddleware(app, store=MemoryStore(), required=True)
```

A POST or PATCH carrying ``Idempotency-Key`` runs once; a retry with the same key and the same
request gets the first response again, with ``Idempotent-Replayed: true``. Per request:

1. The key is read (an sf-string such as ``"8e03978e"`` or a bare token, 1 to 255
   characters); missing when ``required`` or malformed → 400.
2. The request body is read whole (up to ``max_body``; larger bodies pass through untouched and
   unprotected) and replayed to the app unchanged, chunk by chunk.
3. The key, scoped by the principal, is claimed in the store with a lease of ``lock_timeout``
   and a fingerprint of the request (method, path, query, SHA-256 of the body): another
   request in flight → 409 + ``Retry-After``; another request under the key → 422; a stored
   response → replayed; the store unreachable → 503 + ``Retry-After``, the app not called.
4. Claimed: the app runs; its response goes to the client as it is produced, and is copied.
   Stored for ``ttl`` seconds when it ends, unless its status is 5xx, 401, 403, 408 or 429, it
   is larger than ``max_body``, it sent trailers or a pathsend, or the app raised: then the
   key is released so that a retry runs again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from json.encoder import encode_basestring_ascii as _quote
from typing import TYPE_CHECKING, Any

import anyio

from ..._clock import SYSTEM_CLOCK
from ..._errors import StoreUnavailable
from ..._events import HUB, IdempotencyLeaseLostEvent, IdempotentReplay
from ..._idempotency import CLAIMED, DONE, REUSED, _key_sha256, bind_store
from ..._rate_limit import _check_int, _check_seconds
from ._problem import ASGIApp, Message, Receive, Scope, Send, header_value, send_problem

if TYPE_CHECKING:
    from ...stores._memory import MemoryStore
    from ...stores._redis import RedisStore

__all__ = ["IdempotencyMiddleware", "parse_idempotency_key"]

#: Response headers replayed by default (``replay_headers`` adds to them).
DEFAULT_REPLAY_HEADERS = (
    "content-type",
    "content-language",
    "content-encoding",
    "content-location",
    "location",
    "etag",
    "last-modified",
    "cache-control",
    "link",
)
_NOT_STORED = frozenset({401, 403, 408, 429})
_PROBLEMS = "https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header"
_NAMESPACE = "http"

# -- Structured Fields (RFC 9651): just enough to read one Item --------------------------------

_TCHAR = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
_HTTP_TOKEN = re.compile(rb"[" + _TCHAR + rb"]+\Z")
_SF_TOKEN = re.compile(rb"[A-Za-z*][" + _TCHAR + rb":/]*")
_KEY = re.compile(rb"[a-z*][a-z0-9_\-.*]*")
_NUMBER = re.compile(rb"-?([0-9]+)(\.([0-9]*))?")
_BASE64 = re.compile(rb":([A-Za-z0-9+/=]*):")
_UNESCAPED = re.compile(rb"[\x20\x21\x23-\x5b\x5d-\x7e]+")
_DISPLAY_RUN = re.compile(rb"[\x20\x21\x23\x24\x26-\x7e]+")
_HEX = re.compile(rb"[0-9a-f]{2}")
_PLAIN_QUOTED = re.compile(rb'"([\x20\x21\x23-\x5b\x5d-\x7e]*)"\Z')
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _number(data: bytes, i: int, integer_only: bool = False) -> int:
    """The end of the number at ``i``, or -1."""
    match = _NUMBER.match(data, i)
    if match is None:
        return -1
    whole, fraction = match.group(1), match.group(3)
    if fraction is None:
        if len(whole) > 15:
            return -1
        if integer_only:
            text = match.group(0)
            try:
                _EPOCH + timedelta(seconds=int(text))
            except OverflowError:
                return -1
        return match.end()
    if integer_only or len(whole) > 12 or not 1 <= len(fraction) <= 3:
        return -1
    return match.end()


def _string(data: bytes, i: int) -> tuple[str, int] | None:
    """The sf-string starting at ``data[i] == '"'`` and the index after it, or None."""
    out = bytearray()
    i += 1
    n = len(data)
    while i < n:
        run = _UNESCAPED.match(data, i)
        if run is not None:
            out += run.group()
            i = run.end()
            continue
        char = data[i]
        if char == 0x22:  # "
            return out.decode("ascii"), i + 1
        if char == 0x5C and i + 1 < n and data[i + 1] in (0x22, 0x5C):  # \" or \\
            out.append(data[i + 1])
            i += 2
            continue
        return None
    return None


def _display_string(data: bytes, i: int) -> int:
    if data[i : i + 2] != b'%"':
        return -1
    i += 2
    out = bytearray()
    n = len(data)
    while i < n:
        run = _DISPLAY_RUN.match(data, i)
        if run is not None:
            out += run.group()
            i = run.end()
            continue
        char = data[i]
        if char == 0x25 and _HEX.match(data, i + 1):  # %xx, lower-case hex
            out.append(int(data[i + 1 : i + 3], 16))
            i += 3
            continue
        if char == 0x22:
            try:
                out.decode("utf-8")
            except UnicodeDecodeError:
                return -1
            return i + 1
        return -1
    return -1


def _binary(data: bytes, i: int) -> int:
    import base64
    import binascii

    match = _BASE64.match(data, i)
    if match is None:
        return -1
    content = match.group(1)
    unpadded = content.rstrip(b"=")
    padding = len(content) - len(unpadded)
    if padding > 2 or (padding and not unpadded) or b"=" in unpadded:
        return -1
    try:
        base64.b64decode(unpadded + b"=" * (-len(unpadded) % 4), validate=True)
    except binascii.Error:
        return -1
    return match.end()


def _bare_item(data: bytes, i: int) -> tuple[object, int]:
    """A bare item at ``i``: (its str value for a string or token, else None; end) or end -1."""
    if i >= len(data):
        return None, -1
    char = data[i]
    if char == 0x22:
        parsed = _string(data, i)
        return (None, -1) if parsed is None else parsed
    if char == 0x2D or 0x30 <= char <= 0x39:
        return None, _number(data, i)
    match = _SF_TOKEN.match(data, i)
    if match is not None:
        return match.group().decode("ascii"), match.end()
    if char == 0x3A:  # :
        return None, _binary(data, i)
    if char == 0x3F:  # ?
        return None, (i + 2 if data[i + 1 : i + 2] in (b"0", b"1") else -1)
    if char == 0x40:  # @
        return None, _number(data, i + 1, integer_only=True)
    if char == 0x25:  # %
        return None, _display_string(data, i)
    return None, -1


def _sf_key(data: bytes) -> str | None:
    """The String or Token of a Structured Field Item (parameters ignored), or None."""
    n = len(data)
    i = 0
    while i < n and data[i] == 0x20:
        i += 1
    value, i = _bare_item(data, i)
    if i < 0 or not isinstance(value, str):
        return None
    while i < n and data[i] == 0x3B:  # ;
        i += 1
        while i < n and data[i] == 0x20:
            i += 1
        key = _KEY.match(data, i)
        if key is None:
            return None
        i = key.end()
        if i < n and data[i] == 0x3D:  # =
            _, i = _bare_item(data, i + 1)
            if i < 0:
                return None
    while i < n and data[i] == 0x20:
        i += 1
    return value if i == n else None


def parse_idempotency_key(raw: bytes) -> str | None:
    """The key in an ``Idempotency-Key`` header value, or None when it is malformed.

    Accepted: a Structured Field Item (RFC 9651) whose value is a String (``"abc"``, the
    draft's form) or a Token, parameters ignored, and any bare HTTP token (RFC 9110 ``tchar``s,
    which is what most clients send: ``8e03978e-40d5-43e8-bc93-6894a57f9324``); in each case
    1 to 255 characters.
    """
    if len(raw) <= 257:
        # The common forms, read at once: a bare token is its own key whichever way it parses
        # (an sf-token made of tchars, or not an sf-string/token at all), and a quoted string
        # without escapes is its content.
        if _HTTP_TOKEN.match(raw) is not None:
            return raw.decode("ascii") if len(raw) <= 255 else None
        quoted = _PLAIN_QUOTED.match(raw)
        if quoted is not None:
            key = quoted.group(1).decode("ascii")
            return key if 1 <= len(key) <= 255 else None
    key = _sf_key(raw)
    if key is None:
        stripped = raw.strip(b" ")
        if _HTTP_TOKEN.match(stripped) is None:
            return None
        key = stripped.decode("ascii")
    return key if 1 <= len(key) <= 255 else None


def _anonymous_or_authorization(scope: Scope) -> str:
    value = header_value(scope, b"authorization")
    return _principal_of(value)


def _principal_of(authorization: bytes | None) -> str:
    """The default principal: a SHA-256 of the ``Authorization`` header, "" without one."""
    return "" if authorization is None else hashlib.sha256(authorization).hexdigest()


class IdempotencyMiddleware:
    """Run each POST/PATCH with an ``Idempotency-Key`` once, and replay its response.

    Follows draft-ietf-httpapi-idempotency-key-header: 400 when the key is missing (with
    ``required=True``) or malformed, 409 + ``Retry-After`` while the first request is in
    flight, 422 when the key comes back with a different request, the stored response
    otherwise (marked ``Idempotent-Replayed: true``). Errors are ``application/problem+json``.

    Put it after authentication and rate limiting (so their refusals are never stored) and,
    with Starlette, add it after them (``add_middleware`` makes the last one added outermost).

    Args:
        app: the ASGI application.
        store: a `resilient.stores.MemoryStore` (one process) or `resilient.stores.RedisStore`
            (every process). Unreachable → 503, whatever the store's ``on_error``.
        methods: the methods the header applies to (default POST and PATCH).
        required: refuse requests of those methods without the header (400).
        ttl: seconds a response is kept (default one day).
        lock_timeout: the lease of a request in flight, in seconds (default 90): if its
            process dies, the key is free again after it. Pick it above the slowest request.
        principal: ``(scope) -> str`` naming who sent the request; keys are scoped by it.
            Default: a SHA-256 of the ``Authorization`` header (empty when there is none).
        max_body: the largest request or response body (bytes) that is buffered and stored.
        replay_headers: response header names replayed besides the default allow-list
            (content-type, content-language, content-encoding, content-location, location,
            etag, last-modified, cache-control, link). ``Set-Cookie`` is never replayed
            unless listed here.
    """

    __slots__ = (
        "_backend",
        "_lease_ms",
        "_prefix",
        "_replay",
        "_ttl_ms",
        "app",
        "lock_timeout",
        "max_body",
        "methods",
        "principal",
        "required",
        "store",
        "ttl",
    )

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: MemoryStore | RedisStore,
        methods: Iterable[str] = ("POST", "PATCH"),
        required: bool = False,
        ttl: float = 86_400,
        lock_timeout: float = 90,
        principal: Callable[[Scope], str] | None = None,
        max_body: int = 1_048_576,
        replay_headers: Iterable[str] = (),
    ) -> None:
        if isinstance(methods, str):
            raise TypeError(f"methods must be a collection of method names, got {methods!r}")
        names = []
        for method in methods:
            if not isinstance(method, str) or not method:
                raise TypeError(f"methods must hold non-empty str, got {method!r}")
            names.append(method.upper())
        if not isinstance(required, bool):
            raise TypeError(f"required must be a bool, got {required!r}")
        if principal is not None and not callable(principal):
            raise TypeError(f"principal must be a callable or None, got {principal!r}")
        if isinstance(replay_headers, str):
            raise TypeError(f"replay_headers must be a collection of names, got {replay_headers!r}")
        extra = []
        for name in replay_headers:
            if not isinstance(name, str) or not name:
                raise TypeError(f"replay_headers must hold non-empty str, got {name!r}")
            extra.append(name.lower().encode("latin-1"))
        self.app = app
        self.store = store
        self.methods = frozenset(names)
        self.required = required
        self.ttl = _check_seconds(ttl, "ttl")
        self.lock_timeout = _check_seconds(lock_timeout, "lock_timeout")
        self.max_body = _check_int(max_body, "max_body", minimum=0)
        self.principal = principal or _anonymous_or_authorization
        self._replay = frozenset([n.encode() for n in DEFAULT_REPLAY_HEADERS] + extra)
        self._ttl_ms = max(1, math.ceil(self.ttl * 1000))
        self._lease_ms = max(1, math.ceil(self.lock_timeout * 1000))
        self._backend = bind_store(store, SYSTEM_CLOCK)
        self._prefix = self._backend.key_prefix(_NAMESPACE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection (only HTTP requests of ``methods`` are looked at)."""
        if scope["type"] != "http" or scope["method"] not in self.methods:
            await self.app(scope, receive, send)
            return
        # One pass over the headers for the key and, for the default principal, Authorization
        # (repeated lines joined with ", ", as `header_value` does).
        raw: bytes | None = None
        authorization: bytes | None = None
        for name, value in scope.get("headers") or ():
            name = name.lower()
            if name == b"idempotency-key":
                raw = value if raw is None else raw + b", " + value
            elif name == b"authorization":
                authorization = value if authorization is None else authorization + b", " + value
        if raw is None:
            if self.required:
                await send_problem(
                    send,
                    400,
                    title="Idempotency-Key is missing",
                    detail=f"{scope['method']} requests here need an Idempotency-Key header.",
                    type_=f"{_PROBLEMS}#missing",
                )
                return
            await self.app(scope, receive, send)
            return
        key = parse_idempotency_key(raw)
        if key is None:
            await send_problem(
                send,
                400,
                title="Idempotency-Key is malformed",
                detail="Idempotency-Key must be a quoted string or a token of 1 to 255 characters.",
                type_=f"{_PROBLEMS}#malformed",
            )
            return

        # Read the whole body once (at most max_body bytes), keeping the messages as they came.
        messages: list[Message] = []
        digest: Any = None
        body_digest = b""
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                # The client left before sending the whole body: nobody will read a response.
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self.app(scope, _replaying(messages, receive), send)
                return
            more = message.get("more_body", False)
            if digest is None and not more:  # the whole body in one message: the usual case
                body_digest = (_key_sha256 if size <= 4096 else hashlib.sha256)(chunk).digest()
                break
            if digest is None:
                digest = hashlib.sha256()
            digest.update(chunk)
            if not more:
                body_digest = digest.digest()
                break

        principal_of = self.principal
        principal = (
            _principal_of(authorization)
            if principal_of is _anonymous_or_authorization
            else principal_of(scope)
        )
        # One SHA-256 for the storage key and the fingerprint: its digest after the scoped key
        # is the key's (as `storage_key` makes it); after the request's method, path, query
        # and body digest too, the fingerprint.
        hashed = _key_sha256(f"{len(principal)}:{principal}:{key}".encode())
        storage_key = self._prefix + hashed.hexdigest()
        hashed.update(
            b"\0".join(
                (
                    scope["method"].encode(),
                    scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape"),
                    scope.get("query_string", b""),
                    body_digest,
                )
            )
        )
        fingerprint = hashed.hexdigest()
        backend = self._backend
        owner = backend.new_owner()
        try:
            if backend.suspends:
                with anyio.CancelScope(shield=True):
                    status, payload = await backend.aclaim(
                        storage_key, owner, fingerprint, self._lease_ms
                    )
            else:
                status, payload = backend.claim(storage_key, owner, fingerprint, self._lease_ms)
        except StoreUnavailable:
            await send_problem(
                send,
                503,
                title="Idempotency store unavailable",
                detail="The request was not processed; retry it with the same key.",
                headers=[(b"retry-after", b"1")],
            )
            return
        if status == DONE:
            if HUB.active:
                HUB.emit(IdempotentReplay("idempotency", _NAMESPACE, key))
            await _send_stored(send, payload)
            return
        if status == REUSED:
            await send_problem(
                send,
                422,
                title="Idempotency-Key is already used",
                detail="This key was used with a different request (method, path, query or body).",
                type_=f"{_PROBLEMS}#reused",
            )
            return
        if status != CLAIMED:
            await send_problem(
                send,
                409,
                title="A request is outstanding for this Idempotency-Key",
                detail="Retry after the first request has finished.",
                type_=f"{_PROBLEMS}#in-progress",
                headers=[(b"retry-after", str(max(1, math.ceil(payload))).encode())],
            )
            return
        # Claimed: run the app, copying its response as it goes out (the state of that copy in
        # the variables below, set by `capture`).
        replay = self._replay
        max_body = self.max_body
        sent_status = 0
        sent_headers: list[tuple[bytes, bytes]] = []
        sent_body: list[bytes] = []
        sent_size = 0
        storable = True
        ended = False

        async def capture(message: Message) -> None:
            nonlocal sent_status, sent_headers, sent_size, storable, ended
            kind = message["type"]
            if kind == "http.response.body":
                if storable:
                    chunk = message.get("body", b"")
                    sent_size += len(chunk)
                    if sent_size > max_body:
                        storable = False
                        sent_body.clear()
                    else:
                        sent_body.append(bytes(chunk))
                if not message.get("more_body", False):
                    ended = True
            elif kind == "http.response.start":
                sent_status = int(message["status"])
                kept = []
                for name, value in message.get("headers", ()):
                    lower = bytes(name).lower()
                    if lower in replay:
                        kept.append((lower, bytes(value)))
                sent_headers = kept
                if message.get("trailers"):
                    storable = False
            else:  # trailers, pathsend, anything new: not something we can replay
                storable = False
            await send(message)

        try:
            await self.app(scope, _replaying(messages, receive), capture)
        except BaseException:
            # If the store is down, the lease runs out by itself.
            with anyio.CancelScope(shield=True), contextlib.suppress(StoreUnavailable):
                await backend.arelease(storage_key, owner)
            raise
        storable = (
            storable and ended and 200 <= sent_status < 500 and sent_status not in _NOT_STORED
        )
        try:
            if not backend.suspends:
                if not storable:
                    backend.release(storage_key, owner)
                    return
                record = _encode(sent_status, sent_headers, b"".join(sent_body))
                stored = backend.complete(storage_key, owner, record, self._ttl_ms)
            else:
                with anyio.CancelScope(shield=True):
                    if not storable:
                        await backend.arelease(storage_key, owner)
                        return
                    record = _encode(sent_status, sent_headers, b"".join(sent_body))
                    stored = await backend.acomplete(storage_key, owner, record, self._ttl_ms)
        except StoreUnavailable:
            return  # the response was sent; the lease runs out by itself
        if not stored and HUB.active:
            HUB.emit(IdempotencyLeaseLostEvent("idempotency", _NAMESPACE, key))


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands out ``messages`` first, then defers to the real one."""
    pending = iter(messages)

    async def replay() -> Message:
        for message in pending:
            return message
        return await receive()

    return replay


def _encode(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """A stored response: one line of JSON (status, headers as latin-1), a newline, the body.

    The line is ``[status,[[name,value],...]]``, the compact ASCII JSON that `json.dumps`
    writes, put together from the C string quoter.
    """
    fields = ",".join(
        [
            f"[{_quote(name.decode('latin-1'))},{_quote(value.decode('latin-1'))}]"
            for name, value in headers
        ]
    )
    return f"[{int(status)},[{fields}]]\n".encode() + body


async def _send_stored(send: Send, record: bytes) -> None:
    head, _, body = record.partition(b"\n")
    status, headers = json.loads(head)
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    raw.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})
