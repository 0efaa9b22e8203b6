"""An httpx client with ``ResilientTransport``: retries, Retry-After and a breaker per origin.

A small HTTP server on 127.0.0.1 answers 503 twice (the second time with ``Retry-After: 1``),
then 200. The transport retries the GET and honours the hint. A second origin, where nothing
listens, opens its own breaker without touching the first one's.

Run it: ``python examples/httpx_client.py`` (about one second, for the server's Retry-After).
"""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from resilient import Backoff, CircuitBreaker, CircuitOpenError, Retry
from resilient.integrations.httpx import ResilientTransport

answers = iter([(503, {}), (503, {"Retry-After": "1"})])


class Flaky(BaseHTTPRequestHandler):
    """503, 503 with Retry-After, then 200 for ever."""

    def do_GET(self) -> None:
        status, headers = next(answers, (200, {}))
        body = b'{"stock": 7}' if status == 200 else b"busy"
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(f"  server: {self.command} {self.path} -> {args[1]}")


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    up = f"http://127.0.0.1:{server.server_address[1]}"
    down = f"http://127.0.0.1:{closed_port()}"
    breakers: dict[str, CircuitBreaker] = {}

    def breaker_for(origin: str) -> CircuitBreaker:
        breakers[origin] = CircuitBreaker(origin, consecutive_failures=3, open_for=30.0)
        return breakers[origin]

    transport = ResilientTransport(
        retry=Retry(attempts=3, backoff=Backoff.exponential(0.05, 1.0)),
        breaker_factory=breaker_for,  # one breaker per scheme://host:port
    )
    try:
        with httpx.Client(transport=transport, timeout=5.0) as client:
            started = time.monotonic()
            response = client.get(f"{up}/stock/sku-1")
            took = time.monotonic() - started
            print(
                f"GET {up}/stock/sku-1 -> {response.status_code} {response.json()} in {took:.2f} s"
            )
            assert response.status_code == 200
            assert took >= 0.9

            try:  # three attempts, three failures: the breaker of that origin opens
                client.get(f"{down}/stock/sku-1")
            except httpx.ConnectError as error:
                print(f"GET {down} -> ConnectError after 3 attempts: {error}")
            try:
                client.get(f"{down}/stock/sku-1")
            except CircuitOpenError as error:
                print(
                    f"GET {down} -> refused by its breaker, retry after {error.retry_after:.0f} s"
                )
            assert client.get(f"{up}/stock/sku-1").status_code == 200  # the other origin is fine
            print("states:", {origin: b.state.name for origin, b in breakers.items()})
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
