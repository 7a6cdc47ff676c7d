"""Read limits for the model server's HTTP connections, which uvicorn does not have.

uvicorn (under KServe's ModelServer) waits forever for a request's headers and body, takes
headers of any size, and keeps a freshly opened connection that sends nothing. Here, on top of
its httptools protocol:
- a new connection must start a request within `header_timeout_s` or is closed;
- a request's line and headers must be complete within `header_timeout_s` of its first byte,
  and its body within `body_timeout_s` of the headers; else 408 and the connection is closed;
- request line plus headers over `max_header_bytes`: 431 and the connection is closed.
Each refusal is logged as one line. Timers are armed only when a read leaves a request
incomplete, so a request that arrives in one piece costs nothing extra.
"""

from __future__ import annotations

import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from minikf.workload.oip import error_body

log = logging.getLogger("minikf.serve")

_IDLE, _HEADERS, _BODY = 0, 1, 2
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body read timeouts and a header size limit.

    Configure by subclassing with other class attributes (see `guarded_protocol`)."""

    header_timeout_s = 10.0
    body_timeout_s = 30.0
    max_header_bytes = 16 * 1024

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _IDLE
        self._header_bytes = 0
        self._timer = None
        self._timer_phase = None
        self._refused = False

    # -- timers ------------------------------------------------------------------------------
    def _arm(self, phase, seconds: float) -> None:
        self._disarm()
        self._timer_phase = phase
        self._timer = self.loop.call_later(seconds, self._expired, phase)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_phase = None

    def _expired(self, phase) -> None:
        self._timer = self._timer_phase = None
        if self._refused or self.transport is None or self.transport.is_closing():
            return
        if phase == "connect":
            self._refused = True  # nothing sent at all: close quietly, as an idle keep-alive
            self.transport.close()
        elif phase == _HEADERS:
            self._refuse(408, f"request headers not complete within {self.header_timeout_s:g} s")
        else:
            self._refuse(408, f"request body not complete within {self.body_timeout_s:g} s")

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` straight on the transport (the app never saw, or stops seeing, this
        request) and close the connection."""
        self._refused = True
        self._disarm()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and self._phase == _BODY:
            if cycle.response_started:  # too late for a status: just close
                self.transport.close()
                return
            cycle.disconnected = True  # the app's receive() now gets http.disconnect
            cycle.message_event.set()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        log.info("%d from %s: %s", status, client, message)
        body = error_body(message)
        self.transport.write(b"".join([
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % len(body), body]))
        self.transport.close()

    # -- protocol ----------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm("connect", self.header_timeout_s)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._timer_phase == "connect":
            self._disarm()
        super().data_received(data)
        if self._refused or self.transport.is_closing():
            return
        if self._phase == _HEADERS and self._timer_phase != _HEADERS:
            self._arm(_HEADERS, self.header_timeout_s)
        elif self._phase == _BODY and self._timer_phase != _BODY:
            self._arm(_BODY, self.body_timeout_s)

    # -- parser callbacks ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._phase, self._header_bytes = _HEADERS, 0
        super().on_message_begin()

    def _over(self, size: int) -> bool:
        if self._refused:
            return True
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            self._refuse(431, f"request line and headers over {self.max_header_bytes} bytes")
            return True
        return False

    def on_url(self, url: bytes) -> None:
        if not self._over(len(url)):
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._over(len(name) + len(value) + 4):
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._phase = _BODY
        if self._timer_phase == _HEADERS:
            self._disarm()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._phase = _IDLE
        self._disarm()
        super().on_message_complete()


def guarded_protocol(header_timeout_s: float, body_timeout_s: float, max_header_bytes: int) -> type:
    """A GuardedHttpToolsProtocol class with these limits, for uvicorn.Config(http=...)."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {
        "header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s,
        "max_header_bytes": max_header_bytes})
