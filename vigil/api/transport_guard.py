"""Limits on the HTTP transport that uvicorn's httptools protocol does not set.

Measured against `vigil api` before this guard (docs/benchmarks.md, "Hostile input at every door"):
a connection that sends nothing, or a request head one byte at a time, was held open for as long
as the client liked (uvicorn's keep-alive timeout runs only between requests, and any byte
cancels it), and a 200 KB header was read whole (httptools buffers a header until it ends, with no
cap). A few thousand such connections take every file descriptor of the worker (20,000 here):
the API would stay "up" and answer no one.

GuardedHttpToolsProtocol adds, per connection:
- a deadline for each request head: from the connection (or from the first byte after the
  previous response) until the head is complete, HEAD_TIMEOUT_S; past it, 408 and close;
- a cap on a request head's size, MAX_HEAD_BYTES; past it, 431 and close.
Bytes that arrive after a response while the previous request's body is still being sent (a
body the API never reads: every endpoint is GET) count as head bytes too: such a connection is
closed instead of draining an arbitrary body. `limit_concurrency` (server.py) bounds the open
connections per worker; past it, requests get 503.

The class hooks uvicorn's protocol methods (connection_made, data_received, on_message_begin,
on_headers_complete); uvicorn is pinned in requirements.lock, and tests/integration/
test_api_hostile_transport.py checks each limit against the real `vigil api` process.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = 64 * 1024
MAX_CONNECTIONS_PER_WORKER = 2000

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def refusal(status: int, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 response in the API's error shape, closing the connection."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % (status, _REASONS[status], len(body))) + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    head_timeout_s = HEAD_TIMEOUT_S
    max_head_bytes = MAX_HEAD_BYTES

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._head_bytes = 0
        self._head_deadline = None
        self._arm_head_deadline()

    def connection_lost(self, exc) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm_head_deadline()     # waiting for the next request: its head has a deadline too
        if self._head_deadline is not None:
            # Counted before parsing: a whole oversized head can come in one read.
            end = data.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else end + 4
            if self._head_bytes > self.max_head_bytes:
                self._refuse(431, "header_too_large",
                             f"the request line and headers exceed {self.max_head_bytes} bytes")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_deadline is None:     # a pipelined request: its head starts now
            self._arm_head_deadline()

    def on_headers_complete(self) -> None:
        self._cancel_head_deadline()
        super().on_headers_complete()

    # --- deadline -------------------------------------------------------------------------------

    def _arm_head_deadline(self) -> None:
        self._head_bytes = 0
        self._head_deadline = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        self._refuse(408, "request_timeout",
                     f"no complete request line and headers within {self.head_timeout_s:g} s")

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._cancel_head_deadline()
        if not self.transport.is_closing():
            self.transport.write(refusal(status, code, message))
            self.transport.close()
