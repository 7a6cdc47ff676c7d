"""The reaper: what stops a run's processes, containers and cluster objects when the minikf process
running it is killed (kill -9, the OOM killer, a CI timeout) and cannot clean up itself.

Each run starts one: `python -m minikf.engine.reaper RECORD` in a session of its own, with the
read end of a pipe as stdin whose write end only the minikf process holds. The kernel closes that
end however the process ends, so the reaper wakes at once, without polling. At a clean end the
run has removed its record first, and the reaper just exits; if the record is still there and its
minikf process is gone, it reaps the run (`reap`): the recorded processes and everything carrying
the run's marker, the platform's leftovers (containers by label, cluster objects), results.json
saying which step was interrupted, the work dirs, then the record. `minikf clean` does the same
for a record whose reaper did not get to it (killed too, or the machine went down).

Why a process and not something inside the containers or pods: their lifetime belongs to dockerd
or the cluster, which cannot see a host process die; and one watcher per run covers processes,
containers and cluster objects alike, also the ones PDEATHSIG cannot reach.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from minikf.runtime.lifeline import RUN_ID_ENV
from minikf.runtime.liverun import LiveRun, reap_processes, remove_workdirs

LOG_NAME = "reaped.log"  # $MINIKF_HOME/runs/reaped.log: what reapers did, one line each


@dataclass
class Watch:
    """The run's end of its reaper: `release()` at a clean end, after the record is removed."""

    proc: subprocess.Popen | None
    pipe: int | None

    def release(self) -> None:
        if self.pipe is not None:
            os.close(self.pipe)
            self.pipe = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # still starting on a loaded machine: it will go
                pass


def watch(record: LiveRun) -> Watch:
    """Start the run's reaper; a Watch without one if it cannot start (`minikf clean` remains)."""
    assert record.path is not None
    env = {k: v for k, v in os.environ.items() if k != RUN_ID_ENV}  # not one of the run's own
    read, write = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-m", __name__, str(record.path)], stdin=read,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    except OSError:
        os.close(write)
        return Watch(None, None)
    finally:
        os.close(read)
    return Watch(proc, write)


def interrupted_results(record: LiveRun, why: str, step_why: str = "") -> str | None:
    """Write the run's results from what its record holds: the step that was running is
    `interrupted` (with `why`), the steps after it `skipped`; the path written, or None when the
    run wrote its own results (or had not got far enough to have any)."""
    from minikf.results import RunResult, Status, StepResult, aggregate, write_all

    progress = record.progress
    if progress.get("done") or not progress.get("run") or not progress.get("results_dir"):
        return None
    data = dict(progress["run"])
    steps = [StepResult(**s) for s in data.pop("steps", [])]
    data.pop("schema_version", None)
    run = RunResult(**data, steps=steps)
    done = {s.name for s in steps}
    current = progress.get("current")
    for name, kind in progress.get("pending", []):
        if name in done:
            continue
        if name == current:
            run.steps.append(StepResult(name, kind, Status.INTERRUPTED, message=step_why or why,
                                        started=progress.get("current_started", "")))
        else:
            run.steps.append(StepResult(name, kind, Status.SKIPPED, message="interrupted"))
    run.status = aggregate(s.status for s in run.steps)
    run.message = why
    try:
        began = datetime.fromisoformat(run.started)
        run.duration_s = round((datetime.now(timezone.utc) - began).total_seconds(), 3)
    except ValueError:
        pass
    results_dir = Path(progress["results_dir"])
    write_all(run, results_dir)
    return str(results_dir / "results.json")


def reap(record: LiveRun, why: str) -> list[str]:
    """Stop and remove everything a dead run left; one line per thing (starting `could not` for
    what failed, in which case the record stays for `minikf clean` to try again)."""
    from minikf.plugins import PLATFORMS

    lines = reap_processes(record)
    for name, details in record.platform_leftovers.items():
        try:
            lines += PLATFORMS.get(name).reap(details)
        except Exception as exc:  # one platform's trouble must not stop the rest
            lines.append(f"could not remove what the {name} platform left: {exc}")
    try:
        written = interrupted_results(
            record, why, f"interrupted: the minikf process (pid {record.pid}) ended while this "
                         f"step ran (killed?)")
    except Exception as exc:  # e.g. a results dir that is gone or read-only now
        lines.append(f"could not write results: {exc}")
    else:
        if written:
            lines.append(f"marked the run interrupted in {written}")
    lines += remove_workdirs(record)
    if not any(line.startswith("could not") for line in lines):
        record.remove()
    return lines


def _owner_gone(record: LiveRun, within_s: float = 5.0) -> bool:
    """Its pipe closed as the process exited: give the kernel a moment to finish the exit."""
    deadline = time.monotonic() + within_s
    while record.owner_alive():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _log(record_path: Path, run_id: str, lines: list[str]) -> None:
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with open(record_path.parent.parent / LOG_NAME, "a") as log:
        log.writelines(f"{stamp} run {run_id}: {line}\n" for line in lines)


def main() -> int:
    path = Path(sys.argv[1])
    while os.read(0, 4096):  # nothing is ever written: this returns b"" when the run ends
        pass
    if not path.exists():
        return 0  # the run ended and cleaned up itself
    try:
        record = LiveRun.load(path)
    except ValueError as exc:
        _log(path, path.stem, [str(exc)])
        return 1
    if not _owner_gone(record):
        return 0  # the run let go of it while still alive: `minikf clean` handles the rest
    why = (f"interrupted: the minikf process (pid {record.pid}) ended during the run without "
           f"cleaning up (killed?); its reaper stopped what it had started")
    with record.locked() as mine:
        if not mine:
            return 0  # `minikf clean` is at it
        try:
            lines = reap(record, why)
        except Exception as exc:  # noqa: BLE001 - said in the log; `minikf clean` retries
            lines = [f"could not finish: {type(exc).__name__}: {exc}"]
        _log(path, record.run_id, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
