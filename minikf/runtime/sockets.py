"""Helpers for checking secure defaults: which TCP sockets a process listens on."""

from __future__ import annotations

import psutil


def listening_sockets(proc: psutil.Process) -> list:
    """The process's TCP/UDP sockets in LISTEN state (psutil >= 6 names the call net_connections)."""
    connections = getattr(proc, "net_connections", None) or proc.connections
    return [c for c in connections("inet") if c.status == psutil.CONN_LISTEN]
