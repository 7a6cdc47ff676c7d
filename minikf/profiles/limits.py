"""Exec a command under a profile's quota: `python -m minikf.profiles.limits --cpus N
--memory-mb M -- ARGV...`. CPU: the process (and its children) is pinned to N cores with
sched_setaffinity. Memory: RLIMIT_AS caps each process's address space at M MiB, so an
allocation beyond it fails in that process (MemoryError) instead of starving other users."""

from __future__ import annotations

import argparse
import os
import resource
import sys

from minikf.profiles.quota import allowed_cpus


def apply_limits(cpus: int, memory_mb: int) -> None:
    os.sched_setaffinity(0, allowed_cpus(cpus))
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m minikf.profiles.limits")
    parser.add_argument("--cpus", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    apply_limits(args.cpus, args.memory_mb)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
