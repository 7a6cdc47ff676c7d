"""`minikf up --driver existing` on the shared real Kubernetes cluster (shared/k8s/cluster.sh):
the real CLI applies what can be applied offline, waits, writes a diagnostics bundle, and `minikf
down` deletes exactly what it created.

What is applied: the minikf namespace overlay (moved to a namespace with a unique name by a
`--mirror minikf=DIR` overlay on top of the real one) and the GPU overlay's RuntimeClass and device
plugin DaemonSet (kube-system, as on a real install; its runtimeClassName dropped, as this node
has no NVIDIA runtime). Nothing can pull images here, so the DaemonSet's pod never starts: its
readiness wait, cut to 20 s with --wait-timeout, must end in a bundle and an error naming
ImagePullBackOff (or ErrImagePull, the state before it).

The API server answers only inside the cluster's network namespace: the CLI runs there directly
when pytest does (`cluster.sh exec python -m pytest -m kube ...`), else through `cluster.sh exec`.
Skipped, saying why, when the cluster is not up or cannot be reached from here.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from minikf.appliance.components import KUSTOMIZE_MIN, LOCAL_MANIFESTS
from minikf.appliance.tools import parse_version
from tests.paths import ROOT

pytestmark = pytest.mark.kube

NETNS = os.environ.get("MINIKF_K8S_NETNS", "minikf-k8s")
WAIT_S = 20
PULL_FAILURES = ("ImagePullBackOff", "ErrImagePull")


def _kubeconfig() -> Path:
    """$MINIKF_TEST_KUBECONFIG, else where cluster.sh writes it ($MINIKF_K8S_DIR/kubeconfig)."""
    if os.environ.get("MINIKF_TEST_KUBECONFIG"):
        return Path(os.environ["MINIKF_TEST_KUBECONFIG"])
    state = os.environ.get("MINIKF_K8S_DIR") or os.path.join(os.environ.get("TMPDIR") or "/tmp", "minikf-k8s")
    return Path(state) / "kubeconfig"


def _cluster_sh() -> Path | None:
    """cluster.sh: $MINIKF_K8S_CLUSTER_SH, or shared/k8s beside the checkout (or its worktree dir)."""
    if os.environ.get("MINIKF_K8S_CLUSTER_SH"):
        return Path(os.environ["MINIKF_K8S_CLUSTER_SH"])
    for base in (ROOT.parent, ROOT.parent.parent):
        if (base / "shared" / "k8s" / "cluster.sh").is_file():
            return base / "shared" / "k8s" / "cluster.sh"
    return None


def _answers(server: str) -> bool:
    url = urlparse(server)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def cluster() -> tuple[list[str], Path]:
    """(the prefix that runs a command where the API server answers, the kubeconfig), or a skip."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed here")
    client = subprocess.run(["kubectl", "version", "--client"], capture_output=True, text=True).stdout
    kustomize = next((parse_version(line) for line in client.splitlines() if "Kustomize" in line), None)
    if kustomize is None or kustomize < KUSTOMIZE_MIN:
        pytest.skip(f"this kubectl's kustomize ({kustomize}) is older than the existing driver needs (v5)")
    kubeconfig = _kubeconfig()
    if not kubeconfig.is_file():
        pytest.skip(f"no kubeconfig at {kubeconfig}: the shared cluster is not up "
                    f"(bash shared/k8s/cluster.sh up && bash shared/k8s/cluster.sh crds)")
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    prefix: list[str] = []
    if not _answers(server):
        script = _cluster_sh()
        if script is None or not Path(f"/run/netns/{NETNS}").exists() or os.geteuid() != 0:
            pytest.skip(f"the cluster's API server {server} does not answer here and cluster.sh exec "
                        f"cannot enter netns {NETNS} (run pytest inside it: cluster.sh exec python -m "
                        f"pytest -m kube ...)")
        prefix = ["bash", str(script), "exec"]
    probe = subprocess.run([*prefix, "kubectl", "--kubeconfig", str(kubeconfig), "get", "--raw", "/readyz"],
                           capture_output=True, text=True, timeout=60)
    if probe.stdout.strip() != "ok":
        pytest.skip(f"the shared cluster is not ready: {(probe.stderr or probe.stdout).strip()[-200:]}")
    return prefix, kubeconfig


def _overlay(directory: Path, target: Path, extra: str) -> None:
    """A kustomization in `directory` on top of `target` (kustomize wants a relative path)."""
    directory.mkdir(parents=True)
    (directory / "kustomization.yaml").write_text(
        f"resources: [{os.path.relpath(target, directory)}]\n{extra}")


def test_up_on_an_existing_cluster_waits_bundles_the_image_pull_failure_and_down_removes_it(
        cluster, tmp_path):
    prefix, kubeconfig = cluster
    name = f"existing-{uuid.uuid4().hex[:6]}"
    namespace = f"minikf-existing-{uuid.uuid4().hex[:6]}"
    home = tmp_path / "home"
    mirror = tmp_path / "mirror"
    _overlay(mirror / "base" / "minikf-namespace", LOCAL_MANIFESTS / "base" / "minikf-namespace",
             f"namespace: {namespace}\n")
    _overlay(mirror / "overlays" / "gpu", LOCAL_MANIFESTS / "overlays" / "gpu",
             "patches:\n- target: {kind: DaemonSet, name: nvidia-device-plugin}\n  patch: |-\n"
             "    - op: remove\n      path: /spec/template/spec/runtimeClassName\n")
    env = {**os.environ, "MINIKF_HOME": str(home), "PYTHONPATH": str(ROOT)}

    def minikf(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, sys.executable, "-m", "minikf.cli", *args], capture_output=True,
                              text=True, timeout=timeout_s, env=env)

    def kubectl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, "kubectl", "--kubeconfig", str(kubeconfig), *args],
                              capture_output=True, text=True, timeout=60)

    if kubectl("get", "daemonset", "nvidia-device-plugin", "-n", "kube-system", "-o", "name").returncode == 0:
        pytest.skip("kube-system already has a nvidia-device-plugin DaemonSet (another run's?)")
    state_file = home / "appliance" / name / "state.json"
    try:
        up = minikf("up", "--driver", "existing", "--kubeconfig", str(kubeconfig), "--name", name,
                    "--components", "minikf,gpu", "--no-deps", "--mirror", f"minikf={mirror}",
                    "--wait-timeout", str(WAIT_S))
        assert up.returncode == 1, up.stdout + up.stderr
        error = up.stderr.strip().splitlines()[-1]
        assert error.startswith(f"error: gpu: daemonsets in namespace kube-system not rolled out within "
                                f"{WAIT_S}s"), error
        assert "pods: nvidia-device-plugin-" in error and any(r in error for r in PULL_FAILURES), error
        bundle = Path(error.rsplit("diagnostics: ", 1)[1])
        assert bundle.is_file() and bundle.parent == home / "appliance" / name / "diagnostics"
        with tarfile.open(bundle) as tar:
            texts = {Path(m.name).name: tar.extractfile(m).read().decode()
                     for m in tar.getmembers() if m.isfile()}
        assert any(r in texts["pods.txt"] for r in PULL_FAILURES), texts["pods.txt"]
        assert "k8s-device-plugin" in texts["events.txt"]  # the image that could not be pulled
        assert "nvidia-device-plugin" in texts["describe-daemonsets.txt"]

        # what was applied is there: the minikf overlay with what KFP and Katib look for
        ns = json.loads(kubectl("get", "namespace", namespace, "-o", "json").stdout)
        assert ns["metadata"]["labels"]["pipelines.kubeflow.org/enabled"] == "true"
        assert ns["metadata"]["labels"]["katib.kubeflow.org/metrics-collector-injection"] == "enabled"
        assert kubectl("get", "serviceaccount", "default-editor", "-n", namespace).returncode == 0
        created = {(o["kind"], o["namespace"], o["name"])
                   for o in json.loads(state_file.read_text())["created"]}
        assert {("Namespace", "", namespace), ("DaemonSet", "kube-system", "nvidia-device-plugin"),
                ("RuntimeClass", "", "nvidia")} <= created

        status = minikf("status", "--name", name)
        assert status.returncode == 1
        assert "gpu" in status.stdout and "not ready" in status.stdout, status.stdout
    finally:
        down = minikf("down", "--name", name)
        if down.returncode != 0:  # leave nothing on the shared cluster, then fail
            kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false")
            kubectl("delete", "daemonset", "nvidia-device-plugin", "-n", "kube-system", "--ignore-not-found")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not state_file.exists()
    deadline = time.monotonic() + 60
    while True:
        left = [what for what in (("namespace", namespace), ("runtimeclass", "nvidia"),
                                  ("daemonset", "nvidia-device-plugin", "-n", "kube-system"))
                if kubectl("get", *what, "-o", "name").returncode == 0]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert left == [], f"still on the cluster 60s after `minikf down`: {left}"
