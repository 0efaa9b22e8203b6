"""The middlewares' own answers, written as raw ASGI messages (no web framework imported).

Every refusal is an RFC 9457 problem document (``application/problem+json``) with ``type``,
``title``, ``status`` and ``detail``, plus any extension members, sent as one
``http.response.start`` and one ``http.response.body`` without calling the app.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

__all__ = ["Receive", "Scope", "Send", "header_value", "problem_messages", "send_problem"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_PROBLEM_JSON = b"application/problem+json"


def header_value(scope: Scope, name: bytes) -> bytes | None:
    """The request header ``name`` (lower-case bytes), repeated lines joined with ``", "``.

    ``None`` when the request does not carry it. Joining keeps comma lists such as
    ``X-Forwarded-For`` whole when a proxy sent them on several lines.
    """
    found: list[bytes] = []
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            found.append(value)
    if not found:
        return None
    return found[0] if len(found) == 1 else b", ".join(found)


def problem_messages(
    status: int,
    *,
    title: str,
    detail: str,
    type_: str = "about:blank",
    headers: Iterable[tuple[bytes, bytes]] = (),
    extra: Mapping[str, Any] | None = None,
) -> tuple[Message, Message]:
    """The start and body messages of a problem+json response."""
    document: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    if extra:
        document.update(extra)
    body = json.dumps(document, separators=(",", ":")).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", _PROBLEM_JSON),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


async def send_problem(
    send: Send,
    status: int,
    *,
    title: str,
    detail: str,
    type_: str = "about:blank",
    headers: Iterable[tuple[bytes, bytes]] = (),
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Answer with a problem+json response (see `problem_messages`)."""
    start, body = problem_messages(
        status, title=title, detail=detail, type_=type_, headers=headers, extra=extra
    )
    await send(start)
    await send(body)
