"""The kubernetes platform's core flavor on the real cluster of ../shared/k8s (Kubernetes 1.24:
real API server, Job controller, scheduler, kubelet + containerd, kube-proxy, port-forward).
Nothing here is a double: the pods run minikf's runtime and server images.

Run inside the cluster's network namespace: `bash ../shared/k8s/cluster.sh exec pytest -m kube`
(.ci/k8s.sh does); elsewhere these tests skip saying so. The whole journey runs in .ci/k8s.sh
through `minikf run`; these tests pin the parts a user meets when something goes wrong.
"""

from __future__ import annotations

import pytest
import requests

from minikf.platforms.base import ServeRequest, TrainRequest
from minikf.platforms.kubernetes import ClusterStepFailed, KubernetesPlatform
from minikf.runtime.processes import RunResources
from tests.kube.real_cluster import assert_nothing_left, kubeconfig_path
from tests.paths import ROOT

pytestmark = pytest.mark.kube
SAMPLE = ROOT / "data" / "fashion-mnist-sample"


def _platform(namespace: str, **kw) -> KubernetesPlatform:
    return KubernetesPlatform(kubeconfig=str(kubeconfig_path()), namespace=namespace, **kw)


def _train(tmp_path, name: str, workers: int, timeout_s: float) -> TrainRequest:
    return TrainRequest(name=name, workers=workers, epochs=1, batch_size=64, lr=0.002,
                        data_dir=tmp_path / "unused", out=tmp_path / "out", log_path=tmp_path / "train.log",
                        timeout_s=timeout_s, mirrors=[str(SAMPLE)], sample=True)


def test_discovery_chooses_core_where_no_controller_runs(module_namespace):
    """The cluster serves the Kubeflow CRDs (cluster.sh crds) but runs no operator: core, and why."""
    platform = _platform(module_namespace, flavor=None)
    try:
        info = platform.describe()
    finally:
        platform.close()
    assert info["flavor"] == "core" and platform.train_kind == "Job"
    assert "no controller reconciles it" in info["flavors"]["training"]
    assert {"training", "serving"} <= platform.capabilities


@pytest.fixture(scope="module")
def trained(module_namespace, runtime_image, tmp_path_factory) -> tuple[TrainRequest, list[str]]:
    """One 2-rank core training job (the request, what its cleanup reported), shared by the
    tests that look at what it brought back and serve its model."""
    tmp_path = tmp_path_factory.mktemp("core-train")
    platform, resources = _platform(module_namespace, flavor="core"), RunResources()
    request = _train(tmp_path, "minikf-core-train", 2, 240)
    try:
        platform.run_training(request, resources)
    finally:
        problems = resources.cleanup()
        platform.close()
    return request, problems


def test_two_ranks_train_as_an_indexed_job_and_the_model_comes_back(trained):
    """Two pods rendezvous through the rank-0 Service (no cluster DNS here), train one epoch, and
    rank 0's log brings model/ and metrics.jsonl back; every object is deleted at cleanup."""
    import json

    request, problems = trained
    assert problems == []
    rows = [json.loads(line) for line in (request.out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and len(rows[0]["workers"]) == 2
    assert (request.out / "model" / "model.pt").is_file()
    log = request.log_path.read_text()
    assert "[minikf model archive: " in log and "joining the process group (2 ranks" in log


def test_an_image_the_node_lacks_fails_the_step_before_its_timeout_naming_it(module_namespace, tmp_path):
    """The platform's own wait ends as soon as the pod backs off pulling (waiting longer would not
    help), with the pods' state and what to do, not at the engine's generic timeout."""
    platform = _platform(module_namespace, flavor="core", image="minikf/absent:none")
    resources = RunResources()
    try:
        with pytest.raises(ClusterStepFailed) as exc:
            platform.run_training(_train(tmp_path, "minikf-core-noimage", 1, 240), resources)
    finally:
        assert resources.cleanup() == []
        platform.close()
    message = str(exc.value)
    assert message.startswith("Job minikf-core-noimage cannot start: the node cannot get an image "
                              "(load it with `minikf images load`"), message
    assert "ImagePullBackOff" in message, message


def test_served_model_answers_through_the_checked_port_forward(module_namespace, trained, tmp_path):
    """A Deployment of the server image with the token from a Secret; the URL it returns has
    already answered /v2/health/ready through the tunnel; V1 predict works, no token is refused."""
    import numpy as np

    model_dir = trained[0].out / "model"
    platform, resources = _platform(module_namespace, flavor="core"), RunResources()
    try:
        url = platform.serve_model(ServeRequest(name="minikf-core-serve", model_dir=model_dir, token="t0k",
                                                port=0, log_path=tmp_path / "serve.log", timeout_s=120),
                                   resources)
        image = np.zeros((28, 28), dtype=np.float32).tolist()
        answer = requests.post(f"{url}/v1/models/fashion-mnist:predict", json={"instances": [image]},
                               headers={"Authorization": "Bearer t0k"}, timeout=30)
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 1
        assert requests.get(f"{url}/v2/health/ready", timeout=10).status_code == 401
    finally:
        assert resources.cleanup() == []
        platform.close()


def test_a_port_forward_the_api_server_refuses_says_why(module_namespace):
    """The API server's own words (no such pod) reach the user, not 'Connection reset by peer'."""
    platform, resources = _platform(module_namespace, flavor="core"), RunResources()
    try:
        with pytest.raises(ClusterStepFailed) as exc:
            platform.forward_and_check("no-such-pod", "Deployment x", "t", 10, resources)
    finally:
        resources.cleanup()
        platform.close()
    assert "does not reach the model server" in str(exc.value)
    assert ('the API server refused the port-forward to pod no-such-pod: pods "no-such-pod" not found '
            '(HTTP 404)') in str(exc.value)


def test_kube_check_says_which_flavor_runs_and_what_will_not_work(module_namespace):
    """On this cluster (CRDs, no operator): auto picks core and passes; forcing kubeflow fails,
    naming the controller that nothing runs."""
    import subprocess
    import sys

    def check(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "minikf.cli", "kube", "check", "--kubeconfig",
                               str(kubeconfig_path()), "--namespace", module_namespace, *extra],
                              capture_output=True, text=True, timeout=120)

    auto = check()
    assert auto.returncode == 0, auto.stdout + auto.stderr
    assert "training: core: CRD served but no controller reconciles it" in auto.stdout
    forced = check("--flavor", "kubeflow")
    assert forced.returncode == 1
    assert ("✗ training: pytorchjobs.kubeflow.org is served but training-operator is not found: "
            "nothing would reconcile it") in forced.stdout


def test_what_a_killed_run_left_is_reaped_from_its_labels(real_cluster, module_namespace, trained, tmp_path):
    """A run killed after serving (its cleanup never ran): `reap`, as the run's reaper and
    `minikf clean` call it, removes the Deployment, Service, Secret and ConfigMaps by label."""
    platform, resources = _platform(module_namespace, flavor="core"), RunResources()
    name = "minikf-core-killed"
    try:
        platform.serve_model(ServeRequest(name=name, model_dir=trained[0].out / "model", token="t",
                                          port=0, log_path=tmp_path / "serve.log", timeout_s=120), resources)
        selector = ",".join(f"{k}={v}" for k, v in sorted(platform.labels(name).items()))
        details = {"kubeconfig": str(kubeconfig_path()), "context": None, "namespace": module_namespace,
                   "selectors": [selector]}
        removed = KubernetesPlatform.reap(details)
    finally:
        resources.cleanup()  # closes the port-forward; the objects are already gone (404 is fine)
        platform.close()
    kinds = {line.split()[1] for line in removed}
    assert {"Deployment", "Service", "Secret", "ConfigMap"} <= kinds, removed
    assert not [line for line in removed if line.startswith("could not")], removed
    assert_nothing_left(real_cluster, module_namespace)
