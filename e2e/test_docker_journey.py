"""Ctrl-C in the middle of a docker journey: every container of the run is gone afterwards.

The journeys themselves run as the conformance suite on docker (`minikf conformance --platform
docker`, the last lines of .ci/run); this checks the interrupted path, which no scenario can:
during the 2-container training, and during a kfp.local.DockerRunner task of the pipeline.
Skipped, with the reason, where no Docker Engine answers or the images are not built.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import psutil
import pytest

from minikf.images import engine

REASON = engine.available()


def _runs(cli, marker: str) -> dict[str, list]:
    """Run id -> its containers whose command mentions `marker`."""
    runs: dict[str, list] = {}
    for container in cli.containers.list(all=True, filters={"label": "minikf.run"}, ignore_removed=True):
        if marker in " ".join(container.attrs["Config"]["Cmd"] or []):
            runs.setdefault(container.labels["minikf.run"], []).append(container)
    return runs


def _interrupt(tmp_path, scenario: str, marker: str, count: int, params: list[str]) -> None:
    from minikf.platforms.docker import DockerPlatform, remove_labelled
    from minikf.runtime.errors import MinikfError

    try:
        DockerPlatform().check_images()
    except MinikfError as exc:
        pytest.skip(f"images not usable: {exc.message}")
    cli = engine.client()
    before = set(_runs(cli, ""))
    networks = {n.name for n in cli.networks.list()}
    out = tmp_path / "results"
    argv = [sys.executable, "-m", "minikf.cli", "run", scenario, "--platform", "docker",
            "--results", str(out)]
    for param in params:
        argv += ["--param", param]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, mine = time.monotonic() + 240, {}
        while time.monotonic() < deadline and proc.poll() is None:
            mine = {k: v for k, v in _runs(cli, marker).items() if k not in before}
            if any(len(found) >= count for found in mine.values()):
                break
            time.sleep(0.3)
        assert mine, f"no {marker} container appeared: {proc.stdout.read1().decode()[-1500:]}"
        (run_id, _), = mine.items()
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:  # a failed assertion above: do not leave the run behind
            proc.kill()
            proc.wait()
            for leftover in set(_runs(cli, "")) - before:
                remove_labelled(cli, leftover)
    assert proc.returncode != 0
    assert cli.containers.list(all=True, filters={"label": f"minikf.run={run_id}"},
                               ignore_removed=True) == []
    assert {n.name for n in cli.networks.list()} == networks
    drivers = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"])
               if str(out) in " ".join(p.info["cmdline"] or []) or
               run_id in " ".join(p.info["cmdline"] or [])]
    assert drivers == []
    result = json.loads((out / "results.json").read_text())
    assert result["run_id"] == run_id and "interrupted" in result["message"]
    cli.close()


@pytest.mark.slow
@pytest.mark.skipif(REASON is not None, reason=f"no Docker Engine: {REASON}")
def test_ctrl_c_during_training_leaves_no_container(tmp_path):
    _interrupt(tmp_path, "fashion-mnist", "minikf.workload.train_worker", 2, ["epochs=50", "workers=2"])


@pytest.mark.slow
@pytest.mark.skipif(REASON is not None, reason=f"no Docker Engine: {REASON}")
def test_ctrl_c_during_a_pipeline_task_leaves_no_container(tmp_path):
    _interrupt(tmp_path, "fashion-mnist-pipeline", "kfp", 1, [])
