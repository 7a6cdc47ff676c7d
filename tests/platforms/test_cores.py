"""Sizing a training job from the cores free for it: the rule with injected numbers, the
readings from /proc/stat and cgroups with fake files, and one real neighbour on a pinned core."""

import os
import subprocess
import sys
import time

import pytest

from minikf.platforms import cores
from minikf.platforms.cores import Cores, CpuMeter, Sample, WorkerPlan, plan_workers


def test_auto_takes_both_cores_of_a_quiet_two_core_host():
    plan = plan_workers(None, Cores(affinity=2, busy_elsewhere=0.1, window_s=1.2), batch_size=32)
    assert plan.workers == 2 and plan.requested is None
    assert "1.9 of 2 cores free" in plan.reason and "0.1 over 1.2 s" in plan.reason
    assert plan.metrics() == {"workers": 2, "workers_requested": "auto",
                              "workers_reason": plan.reason, "free_cores": 1.9}


def test_auto_takes_one_worker_when_another_process_holds_a_core():
    plan = plan_workers(None, Cores(affinity=2, busy_elsewhere=1.0, window_s=0.8), batch_size=32)
    assert plan.workers == 1
    assert "1.0 of 2 cores free" in plan.reason and "would share a core" in plan.reason


@pytest.mark.parametrize("busy, workers", [(0.0, 2), (0.29, 2), (0.31, 1), (0.6, 1), (2.0, 1)])
def test_a_worker_needs_a_core_mostly_free(busy, workers):
    assert plan_workers(None, Cores(affinity=2, busy_elsewhere=busy), batch_size=64).workers == workers


def test_auto_keeps_a_share_of_the_batch_per_worker():
    plan = plan_workers(None, Cores(affinity=8), batch_size=32)
    assert plan.workers == 2  # 16 images each, not 4
    assert f"at least {cores.MIN_WORKER_BATCH} images per worker" in plan.reason
    assert plan_workers(None, Cores(affinity=8), batch_size=128).workers == 8
    assert plan_workers(None, Cores(affinity=8), batch_size=8).workers == 1


def test_quotas_and_affinity_cap_the_cores():
    profile = plan_workers(None, Cores(affinity=4, profile_quota=1), batch_size=64)
    assert profile.workers == 1 and "the profile's CPU quota is 1" in profile.reason
    cgroup = plan_workers(None, Cores(affinity=4, cgroup_quota=2.0), batch_size=64)
    assert cgroup.workers == 2 and "the cgroup's CPU quota is 2 cores" in cgroup.reason
    pinned = plan_workers(None, Cores(affinity=1), batch_size=64)
    assert pinned.workers == 1 and "1 core to run on" in pinned.reason
    # others' load counts against all the cores we may run on, not only the quota's share
    assert plan_workers(None, Cores(affinity=4, cgroup_quota=2.0, busy_elsewhere=1.5),
                        batch_size=64).workers == 2


def test_a_count_is_run_as_asked_and_says_when_fewer_would_fit():
    over = plan_workers(2, Cores(affinity=2, busy_elsewhere=1.0), batch_size=32)
    assert over == WorkerPlan(2, 2, over.reason, 1.0)
    assert "2 workers as asked, though only 1 fit" in over.reason
    fits = plan_workers(1, Cores(affinity=2), batch_size=32)
    assert fits.workers == 1 and fits.reason.startswith("1 worker as asked")
    assert fits.metrics()["workers_requested"] == 1


def test_busy_elsewhere_is_the_cpus_busy_time_less_this_process_tree():
    before = Sample(at=10.0, cpus={0: (100, 1000), 1: (200, 1000), 2: (0, 1000)}, own_s=5.0)
    # over 1 s: cpu0 fully busy, cpu1 half, cpu2 (not ours) busy; this tree used 0.5 s of CPU
    after = Sample(at=11.0, cpus={0: (200, 1100), 1: (250, 1100), 2: (100, 1100)}, own_s=5.5)
    assert cores.busy_elsewhere(before, after, {0, 1}) == pytest.approx(1.0)
    mine = Sample(at=11.0, cpus=after.cpus, own_s=7.0)  # our own processes were all of it
    assert cores.busy_elsewhere(before, mine, {0, 1}) == 0.0


def test_demand_elsewhere_counts_the_time_other_threads_waited_for_a_cpu():
    # over 2 s: thread 10 ran 1 s and waited 1 s (a neighbour sharing its core with our imports),
    # thread 11 is new and spent 0.5 s, thread 12 ended before the second reading
    before = Sample(at=0.0, cpus={}, own_s=0.0, others_ns={10: 5_000_000_000, 12: 10**9})
    after = Sample(at=2.0, cpus={}, own_s=0.0, others_ns={10: 7_000_000_000, 11: 500_000_000})
    assert cores.demand_elsewhere(before, after) == pytest.approx(1.25)
    assert cores.demand_elsewhere(before, Sample(at=2.0, cpus={}, own_s=0.0)) == 0.0


def test_thread_demand_reads_each_threads_schedstat_but_ours(tmp_path):
    for pid, tids in {100: {100: "30 70 5", 101: "1 2 3"}, 200: {200: "1000 0 1"}, 300: {}}.items():
        for tid, text in tids.items():
            folder = tmp_path / str(pid) / "task" / str(tid)
            folder.mkdir(parents=True)
            (folder / "schedstat").write_text(text + "\n")
    (tmp_path / "self").mkdir()  # not a pid
    assert cores._thread_demand({200}, tmp_path) == {100: 100, 101: 3}


def test_proc_stat_counts_steal_as_busy_and_iowait_as_free(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  9 9 9 9 9 9 9 9 0 0\n"
                    "cpu0 10 1 5 80 4 0 0 0 0 0\n"
                    "cpu1 1 0 1 50 0 1 1 46 0 0\n"
                    "intr 12345\nctxt 99\n")
    assert cores._proc_stat(stat) == {0: (16, 100), 1: (50, 100)}


def test_cgroup_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cores.cgroup_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cores.cgroup_quota(tmp_path) is None
    assert cores.cgroup_quota(tmp_path / "absent") is None


def test_the_meter_samples_at_least_its_window_and_reads_affinity():
    meter = CpuMeter()
    meter.mark()
    found = meter.cores(profile_quota=1)
    assert found.window_s >= cores.MIN_WINDOW_S
    assert found.affinity == len(os.sched_getaffinity(0)) and found.profile_quota == 1
    assert found.source in ("/proc/stat", "schedstat") and found.busy_elsewhere >= 0


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_a_busy_neighbour_on_one_of_two_cores_gives_one_worker():
    """A process outside this tree spinning on one of the two cores we run on: `auto` starts one
    worker (other load on the machine only makes it fewer, never more)."""
    two = sorted(os.sched_getaffinity(0))[:2]
    code = ("import os, sys, time\n"
            "if os.fork(): os._exit(0)\n"  # the spinner's parent exits: it is not our child
            f"os.sched_setaffinity(0, {{{two[0]}}})\n"
            "print(os.getpid(), flush=True)\n"
            "os.close(1); os.close(2)\n"  # the test reads to EOF
            "end = time.monotonic() + 30\n"
            "while time.monotonic() < end: pass\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    spinner = int(out.stdout.split()[0])
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, set(two))
        time.sleep(0.2)  # the spinner is spinning
        meter = CpuMeter()
        meter.mark()
        plan = plan_workers(None, meter.cores(), batch_size=32)
    finally:
        os.sched_setaffinity(0, before)
        os.kill(spinner, 9)
    assert plan.workers == 1, plan.reason
