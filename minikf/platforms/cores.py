"""How many data-parallel training workers this host can run to advantage, and why.

Why: the workers of a data-parallel job on CPU go in lock step (an all-reduce every step), so a
worker that shares its core with another process holds every other worker back. On 2 cores
with one of them taken by another process, 2 workers trained slower than 1. So the local and
docker platforms size a job from the cores that are actually free for it:

- the cores this process may run on (its affinity), at most the cgroup's CPU quota
  (`cpu.max`, e.g. a container started with --cpus) and a profile's CPU quota;
- less what other processes want of them, over a window (from the run's start where the
  platform marked it, else a short one now): the CPU they used (/proc/stat, less the CPU time of
  this process and its children: the run's own warm interpreters importing torch are not a
  neighbour), or, where more, the time their threads ran or waited to run (schedstat): a
  neighbour that shares a core with the run's own imports gets only part of it, but waits for
  the rest. Without /proc/stat, the 1-minute load average stands in;
- a worker is only started for a core that is at least `CORE_FREE` free; `auto` also keeps at
  least `MIN_WORKER_BATCH` images of the job's batch per worker.

`plan_workers` is the rule, fed with numbers (unit-tested with injected ones); `measure_free`
takes them from this host. The plan's `reason` is one sentence for the step's results and
its progress line.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

# A worker needs a core at least this free: lock-step workers run at the pace of the slowest.
CORE_FREE = 0.7
# `auto` gives each worker at least this many images of the job's batch: below it, the
# all-reduce each step costs more than the compute it shares out.
MIN_WORKER_BATCH = 16
# The window over which other processes' CPU use is sampled: at least this long...
MIN_WINDOW_S = 0.3
# ...and a mark older than this is stale (another run's start): sample afresh.
MAX_MARK_AGE_S = 60.0


@dataclass(frozen=True)
class WorkerPlan:
    """The workers a training job runs, what was asked (None: `auto`) and why."""

    workers: int
    requested: int | None
    reason: str
    free_cores: float | None = None

    def metrics(self) -> dict:
        """What the train step records: the choice, the request and the reason."""
        found = {"workers": self.workers,
                 "workers_requested": "auto" if self.requested is None else self.requested,
                 "workers_reason": self.reason}
        if self.free_cores is not None:
            found["free_cores"] = round(self.free_cores, 2)
        return found


@dataclass(frozen=True)
class Cores:
    """What a plan is made from: cores this process may use, the quotas, and what others use."""

    affinity: int
    cgroup_quota: float | None = None
    profile_quota: float | None = None
    busy_elsewhere: float = 0.0
    """Cores' worth of CPU that other processes used (or waited for) over `window_s`."""
    window_s: float = 0.0
    source: str = "/proc/stat"

    @property
    def usable(self) -> float:
        quotas = [q for q in (self.cgroup_quota, self.profile_quota) if q is not None]
        return min([float(self.affinity), *quotas])

    @property
    def free(self) -> float:
        return max(0.0, min(self.usable, self.affinity - self.busy_elsewhere))


def _limit(cores: Cores) -> str:
    """The words for what caps the usable cores."""
    if cores.profile_quota is not None and cores.profile_quota <= cores.usable:
        return f"the profile's CPU quota is {cores.profile_quota:g}"
    if cores.cgroup_quota is not None and cores.cgroup_quota < cores.affinity:
        return f"the cgroup's CPU quota is {cores.cgroup_quota:g} cores"
    return f"{cores.affinity} core{'s' if cores.affinity != 1 else ''} to run on"


def plan_workers(requested: int | None, cores: Cores, batch_size: int | None = None) -> WorkerPlan:
    """How many workers to start. `requested`: an exact count (run as asked; the reason says
    when fewer would fit) or None for `auto`: as many as the free cores allow, each with at
    least MIN_WORKER_BATCH images of `batch_size`."""
    free = cores.free
    fits = max(1, math.floor(free + (1.0 - CORE_FREE)))
    what = (f"{free:.1f} of {cores.usable:g} cores free ({_limit(cores)}; other processes' load "
            f"{cores.busy_elsewhere:.1f} over {cores.window_s:.1f} s, {cores.source})")
    if requested is not None:
        if requested > fits:
            return WorkerPlan(requested, requested, f"{requested} workers as asked, though only "
                              f"{fits} fit: {what}", free)
        return WorkerPlan(requested, requested, f"{requested} worker{'s' if requested > 1 else ''} "
                          f"as asked: {what}", free)
    by_batch = max(1, (batch_size or MIN_WORKER_BATCH) // MIN_WORKER_BATCH)
    workers = min(fits, by_batch)
    if workers == by_batch and by_batch < fits:
        why = (f"{workers} worker{'s' if workers > 1 else ''} (auto): {what}; a batch of "
               f"{batch_size} keeps at least {MIN_WORKER_BATCH} images per worker")
    elif workers == 1 and cores.usable >= 2:
        why = (f"1 worker (auto): {what}; a second worker would share a core, and lock-step "
               "workers go at the slowest one's pace")
    else:
        why = f"{workers} worker{'s' if workers > 1 else ''} (auto): {what}"
    return WorkerPlan(workers, None, why, free)


# --- measuring this host ------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    """One reading: when, each CPU's busy and total ticks, this process tree's CPU seconds, and
    each other thread's nanoseconds run or waiting to run (schedstat; empty where unreadable)."""

    at: float
    cpus: dict[int, tuple[int, int]]
    own_s: float
    others_ns: dict[int, int] = field(default_factory=dict)


def _proc_stat(path: Path = Path("/proc/stat")) -> dict[int, tuple[int, int]]:
    """Per CPU: (busy ticks, total ticks). Busy is user, nice, system, irq, softirq and steal
    (the hypervisor's share is not ours either); idle and iowait are free."""
    found = {}
    for line in path.read_text().splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        ticks = [int(f) for f in fields[:8]] + [0] * (8 - len(fields[:8]))
        user, nice, system, idle, iowait, irq, softirq, steal = ticks
        busy = user + nice + system + irq + softirq + steal
        found[int(name[3:])] = (busy, busy + idle + iowait)
    return found


def own_cpu_seconds() -> tuple[float, set[int]]:
    """CPU seconds used by this process, its children (living, and those it has reaped) and
    theirs: the run's own processes, not neighbours; and their pids."""
    me = psutil.Process()
    total, pids = 0.0, set()
    for proc in [me, *me.children(recursive=True)]:
        pids.add(proc.pid)
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue  # gone meanwhile: its parent counts it once reaped
        total += t.user + t.system + t.children_user + t.children_system
    return total, pids


def _thread_demand(exclude: set[int], proc: Path = Path("/proc")) -> dict[int, int]:
    """Per thread of every process not in `exclude`: nanoseconds it has run plus waited for a
    CPU (the first two fields of its schedstat)."""
    found: dict[int, int] = {}
    try:
        pids = [int(entry.name) for entry in os.scandir(proc) if entry.name.isdigit()]
    except OSError:
        return found
    for pid in pids:
        if pid in exclude:
            continue
        try:
            tids = os.listdir(proc / str(pid) / "task")
        except OSError:
            continue
        for tid in tids:
            try:
                ran, waited = (proc / str(pid) / "task" / tid / "schedstat").read_text().split()[:2]
            except (OSError, ValueError):
                continue
            found[int(tid)] = int(ran) + int(waited)
    return found


def sample() -> Sample:
    try:
        cpus = _proc_stat()
    except OSError:
        cpus = {}
    own, pids = own_cpu_seconds()
    return Sample(time.monotonic(), cpus, own, _thread_demand(pids))


def demand_elsewhere(before: Sample, after: Sample) -> float:
    """Cores' worth of time that threads outside this tree ran or waited to run between two
    samples (a thread that started meanwhile counts whole), on any CPU."""
    window_ns = (after.at - before.at) * 1e9
    if window_ns <= 0 or not after.others_ns:
        return 0.0
    spent = sum(max(0, ns - before.others_ns.get(tid, 0)) for tid, ns in after.others_ns.items())
    return spent / window_ns


def busy_elsewhere(before: Sample, after: Sample, allowed: set[int]) -> float:
    """Cores' worth of CPU that processes outside this tree used between two samples, on the
    CPUs in `allowed`."""
    busy = 0.0
    for cpu in allowed:
        if cpu not in before.cpus or cpu not in after.cpus:
            continue
        b0, t0 = before.cpus[cpu]
        b1, t1 = after.cpus[cpu]
        if t1 > t0:
            busy += (b1 - b0) / (t1 - t0)
    window = after.at - before.at
    own = (after.own_s - before.own_s) / window if window > 0 else 0.0
    return max(0.0, busy - own)


def cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """This process's cgroup v2 CPU quota in cores (`cpu.max`: "200000 100000" is 2), if set."""
    try:
        rel = next((line.split("::", 1)[1] for line in
                    Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::")), "/")
    except OSError:
        rel = "/"
    for folder in (root / rel.lstrip("/"), root):
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        except (OSError, ValueError):
            continue
        return None if quota == "max" else int(quota) / int(period)
    return None


def affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


class CpuMeter:
    """Samples other processes' CPU use from a mark (the run's start) to the plan."""

    def __init__(self) -> None:
        self._mark: Sample | None = None

    def mark(self) -> None:
        """Start the window now (a platform does when a run starts)."""
        self._mark = sample()

    def cores(self, profile_quota: float | None = None) -> Cores:
        """The cores now: affinity, quotas, and what others used since the mark (waiting for
        MIN_WINDOW_S where the mark is younger, or sampling a fresh window where there is none)."""
        allowed = affinity()
        start = self._mark
        if start is None or not start.cpus or time.monotonic() - start.at > MAX_MARK_AGE_S:
            start = sample()
        wait = MIN_WINDOW_S - (time.monotonic() - start.at)
        if wait > 0:
            time.sleep(wait)
        end = sample()
        self._mark = None  # one window per run: a later plan samples afresh
        if start.cpus and end.cpus:
            used, source = busy_elsewhere(start, end, allowed), "/proc/stat"
            if len(allowed) == len(end.cpus):  # all of the host's CPUs: demand anywhere counts
                wanted = demand_elsewhere(start, end)
                if wanted > used:
                    used, source = min(wanted, float(len(allowed))), "schedstat"
        else:  # no /proc/stat: the load average, less this tree's running processes
            used, source = _load_elsewhere(), "load average"
        return Cores(affinity=len(allowed), cgroup_quota=cgroup_quota(), profile_quota=profile_quota,
                     busy_elsewhere=used, window_s=end.at - start.at, source=source)


def _load_elsewhere() -> float:
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 0.0
    me = psutil.Process()
    running = sum(1 for p in [me, *me.children(recursive=True)]
                  if _status(p) == psutil.STATUS_RUNNING)
    return max(0.0, load - running)


def _status(proc: psutil.Process) -> str:
    try:
        return proc.status()
    except psutil.Error:
        return ""
