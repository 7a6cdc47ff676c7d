"""Nightly benchmark entry point: every `minikf bench` at a chosen size, saved and compared.

    python perf/nightly.py [--size ci|full] [--threshold 0.10]

For each of serve, train and journey: runs the command with --save (perf/results/<machine>/),
and, where an earlier saved result of the same benchmark exists for this machine, --compare
against the latest one. Exit status: 1 if any benchmark regressed beyond the threshold (or
failed), else 0. Results are only ever written by this script or an explicit --save.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = {
    "ci": {"serve": ["--users", "4", "--duration", "2", "--warmup", "0.5", "--rounds", "1"],
           "train": ["--workers", "1,2", "--epochs", "1"],
           "journey": []},
    "full": {"serve": ["--users", "16", "--duration", "10", "--rounds", "3"],
             "train": ["--workers", "1,2", "--epochs", "3"],
             "journey": []},
}


def latest(benchmark: str) -> Path | None:
    host = "".join(c if c.isalnum() or c in "_.-" else "_" for c in socket.gethostname()) or "unknown"
    found = sorted((RESULTS / host).glob(f"{benchmark}-*.json"))
    return found[-1] if found else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--threshold", default="0.10")
    parser.add_argument("--only", choices=["serve", "train", "journey"], action="append")
    args = parser.parse_args(argv)
    worst = 0
    for benchmark, extra in SIZES[args.size].items():
        if args.only and benchmark not in args.only:
            continue
        cmd = [sys.executable, "-m", "minikf.cli", "bench", benchmark, *extra, "--save",
               "--threshold", args.threshold]
        previous = latest(benchmark)
        if previous:
            cmd += ["--compare", str(previous)]
        print("$", " ".join(cmd), flush=True)
        worst = max(worst, subprocess.run(cmd, check=False).returncode)
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main())
