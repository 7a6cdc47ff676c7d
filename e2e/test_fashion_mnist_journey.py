"""The Fashion-MNIST journey through the CLI, then a check that nothing of it is left."""

import json
import socket
import subprocess
import sys

import psutil
import pytest


@pytest.mark.slow
def test_journey_passes_and_leaves_nothing(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "minikf.cli", "run", "fashion-mnist", "--results", str(out)],
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((out / "results.json").read_text())
    steps = {s["name"]: s for s in data["steps"]}
    # learned, with margin for any CPU (24 seeds: 0.813-0.853; see scenarios/fashion-mnist.yaml)
    assert steps["evaluate"]["metrics"]["accuracy"] >= 0.75
    assert len(steps["train"]["series"]["loss"]) == steps["train"]["metrics"]["epochs"]
    assert steps["predict"]["metrics"]["agreement"] == 1.0
    assert (out / "model" / "model.pt").exists()
    report = (out / "report.html").read_text()
    # the charts' data (the browser tests in tests/browser look at them drawn)
    assert 'data-chart="evaluate-confusion"' in report and 'data-chart="train-loss"' in report
    assert "Ankle boot" in report and 'data-chart="predict-latency"' in report
    assert len(steps["evaluate"]["outputs"]["confusion"]) == 10
    port = int(steps["serve"]["outputs"]["url"].rsplit(":", 1)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the model server is still listening"
    # Only this run's processes: other journeys may run beside it under xdist.
    mine = (data["run_id"], str(out))
    leftovers = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"])
                 if any(m in part for part in (p.info["cmdline"] or []) for m in mine)]
    assert leftovers == []
    assert "serve_token" not in (out / "results.json").read_text()
