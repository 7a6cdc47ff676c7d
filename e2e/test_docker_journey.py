"""Ctrl-C in the middle of the docker journey: every container of the run is gone afterwards.

The journey itself runs as the scenario items (`pytest e2e --platform docker`, the extra
line in .ci/run); this checks the interrupted path, which no scenario can.
Skipped, with the reason, where no Docker Engine answers or the images are not built.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from minikf.images import engine

REASON = engine.available()


def _train_runs(cli) -> dict[str, list]:
    runs: dict[str, list] = {}
    for container in cli.containers.list(all=True, filters={"label": "minikf.run"}):
        if "minikf.workload.train_worker" in " ".join(container.attrs["Config"]["Cmd"] or []):
            runs.setdefault(container.labels["minikf.run"], []).append(container)
    return runs


@pytest.mark.slow
@pytest.mark.skipif(REASON is not None, reason=f"no Docker Engine: {REASON}")
def test_ctrl_c_during_training_leaves_no_container(tmp_path):
    from minikf.errors import MinikfError
    from minikf.platforms.docker import DockerPlatform, remove_labelled

    try:
        DockerPlatform().check_images()
    except MinikfError as exc:
        pytest.skip(f"images not usable: {exc.message}")
    cli = engine.client()
    before = set(_train_runs(cli))
    networks = {n.name for n in cli.networks.list()}
    out = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "minikf.cli", "run", "fashion-mnist", "--platform",
                             "docker", "--results", str(out), "--param", "epochs=50"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, mine = time.monotonic() + 240, {}
        while time.monotonic() < deadline and proc.poll() is None:
            mine = {k: v for k, v in _train_runs(cli).items() if k not in before}
            if any(len(workers) >= 2 for workers in mine.values()):
                break
            time.sleep(0.5)
        assert mine, f"no training containers appeared: {proc.stdout.read1().decode()[-1500:]}"
        (run_id, workers), = mine.items()
        assert len(workers) == 2
        time.sleep(2)  # training under way
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:  # a failed assertion above: do not leave the run behind
            proc.kill()
            proc.wait()
            for leftover in set(_train_runs(cli)) - before:
                remove_labelled(cli, leftover)
    assert proc.returncode != 0
    assert cli.containers.list(all=True, filters={"label": f"minikf.run={run_id}"}) == []
    assert {n.name for n in cli.networks.list()} == networks
    result = json.loads((out / "results.json").read_text())
    assert result["run_id"] == run_id and "interrupted" in result["message"]
    cli.close()
