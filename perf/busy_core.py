"""The journey with one core taken by another process: does `workers: auto` avoid the slow case?

python perf/busy_core.py [--rounds 2] [--json OUT]

Starts one busy process outside minikf's process tree (a CPU-bound loop, the "neighbour"),
pinned to the first core this process may use, then runs `minikf run fashion-mnist` with
workers=auto, workers=1 and workers=2 in turn, `rounds` times, each in a fresh CLI process
timed from outside. Prints each run's wall and train-step seconds, the workers auto chose and
why, and the best of each; the neighbour is killed at the end (also on failure).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPIN = ("import os, sys, time\n"
        "if os.fork(): os._exit(0)\n"  # its parent exits: the spinner is nobody's child here
        "os.sched_setaffinity(0, {%d})\n"
        "print(os.getpid(), flush=True)\n"
        "os.close(1); os.close(2)\n"
        "end = time.monotonic() + %d\n"
        "while time.monotonic() < end: pass\n")


def neighbour(core: int, seconds: int) -> int:
    out = subprocess.run([sys.executable, "-c", SPIN % (core, seconds)], capture_output=True,
                         text=True, check=True)
    return int(out.stdout.split()[0])


def journey(workers: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="minikf-busy-") as tmp:
        results = Path(tmp) / "results"
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "minikf.cli", "run", "fashion-mnist", "--quiet",
                               "--results", str(results), "--param", f"workers={workers}"],
                              capture_output=True, text=True, timeout=1800, check=False)
        wall = time.monotonic() - started
        if proc.returncode != 0:
            raise RuntimeError(f"workers={workers} failed:\n{proc.stderr[-2000:]}")
        steps = {s["name"]: s for s in json.loads((results / "results.json").read_text())["steps"]}
    train = steps["train"]
    return {"workers_asked": workers, "workers": train["metrics"]["workers"],
            "reason": train["metrics"]["workers_reason"], "wall_s": wall,
            "train_s": train["duration_s"], "accuracy": steps["evaluate"]["metrics"]["accuracy"],
            "load_avg": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    core = sorted(os.sched_getaffinity(0))[0]
    spinner = neighbour(core, 3600)
    runs = []
    try:
        time.sleep(1)
        for _ in range(args.rounds):
            for workers in ("auto", "1", "2"):
                runs.append(journey(workers))
                r = runs[-1]
                print(f"workers={workers:4} -> {r['workers']}: wall {r['wall_s']:5.1f} s, train "
                      f"{r['train_s']:5.1f} s, accuracy {r['accuracy']:.3f}, load {r['load_avg']:.1f}",
                      flush=True)
    finally:
        os.kill(spinner, signal.SIGKILL)
    best = {w: min(r["wall_s"] for r in runs if r["workers_asked"] == w) for w in ("auto", "1", "2")}
    reasons = sorted({r["reason"] for r in runs if r["workers_asked"] == "auto"})
    chosen = sorted({r["workers"] for r in runs if r["workers_asked"] == "auto"})
    print(f"best wall: auto {best['auto']:.1f} s, 1 worker {best['1']:.1f} s, 2 workers "
          f"{best['2']:.1f} s; auto chose {chosen}")
    for reason in reasons:
        print(f"  auto: {reason}")
    if args.json:
        args.json.write_text(json.dumps({"neighbour_core": core, "runs": runs, "best_wall_s": best},
                                        indent=2))


if __name__ == "__main__":
    main()
