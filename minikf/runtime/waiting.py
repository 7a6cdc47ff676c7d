"""Waiting for something to become ready: one loop for servers, ports and resources alike.

Every wait has the same three ends: ready (the probe returned a value), the process behind
it exited first, or the time ran out. The last two raise `NotReady` with a message that names
what was waited for, for how long, what the probe saw last, and (through `detail`) where to
look, such as a log tail.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from minikf.runtime.errors import NotReady

T = TypeVar("T")


class Pollable(Protocol):
    """What a wait watches besides the probe: a process handle (Popen, a container, ...)."""

    returncode: int | None

    def poll(self) -> int | None: ...


class Retry(Exception):
    """Raised by a probe: not ready yet, and the message says what it saw."""


def wait_until(probe: Callable[[], T | None], *, what: str, timeout_s: float,
               interval_s: float = 0.05, proc: Pollable | None = None,
               detail: Callable[[], str] = lambda: "") -> T:
    """Call `probe` every `interval_s` until it returns a value other than None/False.

    Raises NotReady when `proc` exits first ("WHAT exited CODE before it was ready") or after
    `timeout_s` ("WHAT not ready after Ns (LAST)"); `detail()` is appended to either."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while True:
        if proc is not None and proc.poll() is not None:
            ended = getattr(proc, "exit_reason", None) or f"exited {proc.returncode}"
            raise NotReady(f"{what} {ended} before it was ready{detail()}")
        try:
            value = probe()
        except Retry as exc:
            last, value = str(exc), None
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise NotReady(f"{what} not ready after {timeout_s:g}s ({last}){detail()}")
        time.sleep(interval_s)


def http_probe(get: Callable[[], object], ok: Callable[[object], T | None]) -> Callable[[], T | None]:
    """A probe from an HTTP call: `get()` makes the request, `ok(response)` says whether it is
    the ready answer (its value is returned). Connection errors and other answers are `Retry`."""
    import requests

    def probe() -> T | None:
        try:
            response = get()
        except requests.RequestException as exc:
            raise Retry(type(exc).__name__) from None
        value = ok(response)
        if value is None or value is False:
            raise Retry(f"HTTP {getattr(response, 'status_code', '?')}")
        return value

    return probe


def wait_for_port(port: int, proc: Pollable | None, timeout_s: float, what: str = "service",
                  detail: Callable[[], str] = lambda: "") -> None:
    """Until something listens on 127.0.0.1:port; NotReady if `proc` exits first or time runs out."""
    from minikf.runtime.ports import port_open

    wait_until(lambda: port_open(port), what=f"{what} on 127.0.0.1:{port}", timeout_s=timeout_s,
               proc=proc, detail=detail)
