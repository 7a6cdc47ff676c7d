"""KubernetesPlatform's kubeflow flavor: PyTorchJob, TrainJob and InferenceService.

The tests marked `kube` run on the real cluster (tests/kube/real_cluster.py: the shared
single-node Kubernetes with the Kubeflow, Trainer and KServe CRDs applied), each module in a
namespace of its own that must be empty after every test. The cluster has no Training Operator,
Trainer or KServe controller: `StandIns` (tests/kube/standins.py) plays those operators only —
it makes the pods with the operators' labels and env from the objects as the API server stored
them, and writes their status conditions. Everything else is real: the API server and its CRD
schemas, RBAC, the kubelet running minikf's runtime image, pod logs, garbage collection, the
port-forward through the API server, the journey's steps and the model server.

The few tests still on FakeApiServer say in their docstring why the real cluster cannot do
their job.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from minikf.kube import objects as res
from minikf.platforms.base import TrainRequest
from minikf.platforms.kubernetes import ClusterStepFailed, KubernetesPlatform
from minikf.runtime.errors import MinikfError
from minikf.runtime.processes import RunResources
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.real_cluster import restricted_kubeconfig
from tests.kube.standins import StandIns
from tests.paths import ROOT

SAMPLE = ROOT / "data" / "fashion-mnist-sample"
ALL_CRDS = {("kubeflow.org", "v1", "pytorchjobs"), ("serving.kserve.io", "v1beta1", "inferenceservices")}


@pytest.fixture(autouse=True)
def kubeflow_flavor(monkeypatch):
    """No Kubeflow controller Deployment runs on either cluster: discovery would choose the core
    flavor, so these tests force the kubeflow one (the TrainJob test undoes it)."""
    monkeypatch.setenv("MINIKF_KUBE_FLAVOR", "kubeflow")


def test_capabilities_follow_the_crds(tmp_path):
    """Still on FakeApiServer: it needs a cluster serving the TrainJob CRD alone. CRDs are
    cluster-wide and the shared cluster serves them all; removing some would break other tests."""
    with FakeApiServer(crds={("trainer.kubeflow.org", "v1alpha1", "trainjobs")}) as api:
        platform = KubernetesPlatform(kubeconfig=str(api.kubeconfig(tmp_path)), namespace="ml")
    assert platform.capabilities == {"training"} and platform.train_kind == "TrainJob"
    missing = platform.missing(["training", "serving", "tuning"])
    assert missing[0].startswith("serving (")
    assert "no inferenceservices.serving.kserve.io (KServe) CRD" in missing[0]
    assert missing[1] == "tuning (not implemented on the kubernetes platform yet)"
    info = platform.describe()
    assert info["namespace"] == "ml" and info["kubernetes"] == "v1.31.0-fake"
    assert info["crds"]["trainjobs.trainer.kubeflow.org"] and not info["crds"]["pytorchjobs.kubeflow.org"]


def test_scenario_is_skipped_naming_the_missing_crd(tmp_path):
    """Still on FakeApiServer, for the same reason: a cluster without the KServe CRD."""
    from minikf.engine.runner import run_scenario
    from minikf.scenario import load_scenario

    with FakeApiServer(crds={("kubeflow.org", "v1", "pytorchjobs")}) as api:
        platform = KubernetesPlatform(kubeconfig=str(api.kubeconfig(tmp_path)))
        result = run_scenario(load_scenario(ROOT / "scenarios" / "fashion-mnist.yaml"), platform,
                              tmp_path / "results")
    assert result.status == "skipped"
    assert "inferenceservices.serving.kserve.io" in result.message
    assert not [r for r in api.requests if r[0] == "POST" and "selfsubject" not in r[1]]


def _request(name: str, workers: int, mirrors: list[str], sample: bool, timeout_s: float,
             tmp_path: Path) -> TrainRequest:
    """One epoch of the journey's training as the train step asks for it."""
    return TrainRequest(name=name, workers=workers, epochs=1, batch_size=64, lr=0.002,
                        data_dir=tmp_path / "data", out=tmp_path / "out",
                        log_path=tmp_path / "train.log", timeout_s=timeout_s, mirrors=mirrors,
                        sample=sample)


@pytest.fixture
def platform(real_cluster, kube_ns, runtime_image):
    """The kubeflow flavor on the real cluster, in this module's namespace, as the admin."""
    platform = KubernetesPlatform(kubeconfig=str(real_cluster.kubeconfig), namespace=kube_ns,
                                  flavor="kubeflow", image=runtime_image)
    yield platform
    platform.close()


@pytest.fixture
def standins(real_cluster, kube_ns):
    """The stand-in operators for this namespace (the cluster has the CRDs, not the operators)."""
    with StandIns(real_cluster.api_client, kube_ns) as running:
        yield running


@pytest.fixture
def resources(kube_ns):
    """The run's resources; cleaned up after the test (if it did not) before the namespace is
    checked empty."""
    resources = RunResources()
    yield resources
    resources.cleanup()


def _stored(real_cluster, namespace: str, crd, name: str) -> dict:
    return real_cluster.custom().get_namespaced_custom_object(crd.group, crd.version, namespace,
                                                              crd.plural, name)


@pytest.mark.kube
def test_missing_permission_is_named_before_anything_is_created(real_cluster, kube_ns, tmp_path):
    """A user whose Role allows only creating ConfigMaps (real RBAC, a ServiceAccount token)."""
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]
    with restricted_kubeconfig(real_cluster, kube_ns, tmp_path, rules) as kubeconfig:
        platform = KubernetesPlatform(kubeconfig=str(kubeconfig), flavor="kubeflow")
        try:
            request = _request("minikf-train-x", 2, [str(SAMPLE)], True, 60, tmp_path)
            with pytest.raises(MinikfError) as exc:
                platform.run_training(request, RunResources())
        finally:
            platform.close()
        assert platform.namespace == kube_ns  # the context's namespace
        assert [c.metadata.name for c in real_cluster.core().list_namespaced_config_map(kube_ns).items] == [
            "kube-root-ca.crt"]
    assert f"missing permissions in namespace '{kube_ns}'" in exc.value.message
    assert "create pytorchjobs.kubeflow.org" in exc.value.message
    assert "get pods/log" in exc.value.message and "create configmaps" not in exc.value.message


@pytest.mark.kube
def test_failed_job_says_why_with_the_rank0_log_and_cleans_up(platform, standins, resources, tmp_path):
    """Both pods of the PyTorchJob fail for real (the shipped data is corrupt: its MD5 check
    fails in the pod); the stand-in plays the Training Operator (pods, then the Failed
    condition). The error has the operator's message and the rank-0 log's tail."""
    broken = tmp_path / "broken"
    shutil.copytree(SAMPLE, broken)
    (broken / "train-labels-idx1-ubyte.gz").write_bytes(b"not the labels")
    request = _request("minikf-train-y", 2, [str(broken)], True, 240, tmp_path)
    with pytest.raises(ClusterStepFailed) as exc:
        platform.run_training(request, resources)
    message = str(exc.value)
    assert message.startswith("PyTorchJob minikf-train-y failed: PyTorchJob minikf-train-y is failed "
                              "because 1 "), message
    assert "rank-0 log tail:" in message and "could not download train-labels-idx1-ubyte.gz" in message
    assert resources.cleanup() == []


@pytest.mark.kube
def test_what_a_killed_run_created_is_removed_through_its_record(platform, real_cluster, kube_ns,
                                                                  resources, tmp_path):
    """The run noted in its live record what it labels on the cluster; its reaper (or `minikf
    clean`) deletes those objects when the run was killed before its cleanup could. No stand-in
    runs: nothing reconciles the PyTorchJob, as on a cluster whose operator is down."""
    from minikf.runtime.liverun import LiveRun

    record = LiveRun.create("k1", home=tmp_path)
    resources.record, resources.run_id = record, "k1"
    request = _request("minikf-train-k", 1, [str(SAMPLE)], True, 2, tmp_path)
    expected = "not done after 1s; no pods .* were created .*is its controller running"
    with pytest.raises(ClusterStepFailed, match=expected):
        platform.run_training(request, resources)
    selector = "minikf.dev/run=minikf-train-k"
    jobs = real_cluster.custom().list_namespaced_custom_object(
        res.PYTORCHJOB.group, res.PYTORCHJOB.version, kube_ns, res.PYTORCHJOB.plural,
        label_selector=selector)["items"]
    maps = real_cluster.core().list_namespaced_config_map(kube_ns, label_selector=selector).items
    created = [("pytorchjobs", j["metadata"]["name"]) for j in jobs] + [
        ("ConfigMap", m.metadata.name) for m in maps]
    assert ("pytorchjobs", "minikf-train-k") in created and len(created) >= 2
    details = LiveRun.load(record.path).platform_leftovers["kubernetes"]
    assert details["namespace"] == kube_ns and details["kubeconfig"] == str(real_cluster.kubeconfig)
    resources.callbacks.clear()  # instead of the run's cleanup: it was killed
    lines = KubernetesPlatform.reap(details)
    assert sorted(lines) == sorted(f"removed {kind} {name} in namespace {kube_ns}" for kind, name in created)
    assert KubernetesPlatform.reap(details) == []


@pytest.mark.kube
def test_remote_mirrors_are_passed_to_the_pods_and_nothing_is_shipped(platform, real_cluster, kube_ns,
                                                                      standins, resources, tmp_path):
    """A pod whose image the node does not have: the kubelet's real ImagePullBackOff (nothing is
    pulled here) ends the step at once, in its words. The stand-in plays the Training Operator; the
    PyTorchJob is read back as the API server stored it. One pod: a second would hold a CPU of
    the shared node while it fails to pull (two-pod jobs elsewhere cover the workers' env)."""
    platform.image = "minikf/not-loaded:0"
    request = _request("minikf-train-z", 1, ["https://mirror.example/fm/"], False, 120, tmp_path)
    with pytest.raises(ClusterStepFailed) as exc:
        platform.run_training(request, resources)
    message = str(exc.value)
    assert message == ("PyTorchJob minikf-train-z cannot start: the node cannot get an image (load it with "
                       "`minikf images load`, or pin a tag a registry has); pods: minikf-train-z-master-0 "
                       "Pending [pytorch: ImagePullBackOff (Back-off pulling image \"minikf/not-loaded:0\")]")
    job = _stored(real_cluster, kube_ns, res.PYTORCHJOB, "minikf-train-z")
    argv = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["command"]
    assert argv[argv.index("--mirrors") + 1] == "https://mirror.example/fm/" and "--sample" not in argv
    assert set(job["spec"]["pytorchReplicaSpecs"]) == {"Master"}
    assert not real_cluster.core().list_namespaced_config_map(
        kube_ns, label_selector="minikf.dev/run=minikf-train-z").items
    (pod,) = standins.created_pods
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    own_ip = {"fieldRef": {"fieldPath": "status.podIP"}}  # the master listens on its own pod IP
    assert env["MASTER_ADDR"] == {"name": "MASTER_ADDR", "valueFrom": own_ip}
    assert (env["RANK"]["value"], env["WORLD_SIZE"]["value"]) == ("0", "1")
    assert pod["metadata"]["labels"]["training.kubeflow.org/replica-type"] == "master"
    assert resources.cleanup() == []


@pytest.mark.kube
@pytest.mark.timeout(900)
def test_fashion_mnist_journey_on_the_cluster(platform, standins, tmp_path):
    """The whole journey through the platform on the real cluster: the sample shipped as
    ConfigMaps, a PyTorchJob of two pods running minikf's runtime image (real torch.distributed
    between pod IPs), the model back from the master's log, evaluated here, served by an
    InferenceService's predictor pod (the real model server), predicted through a real
    port-forward with the token; every object deleted at the end (the namespace is checked empty
    after the test). The stand-ins play the Training Operator and KServe. 8 epochs reach
    0.707-0.820 over 30 seeds, clear of the scenario's 0.65 on any CPU."""
    from minikf.engine.runner import run_scenario
    from minikf.scenario import load_scenario

    result = run_scenario(load_scenario(ROOT / "scenarios" / "fashion-mnist.yaml"), platform,
                          tmp_path / "results", params={"epochs": 8})
    steps = {s.name: s for s in result.steps}
    assert result.status == "passed", [(s.name, s.status, s.message) for s in result.steps]
    assert steps["train"].metrics["workers"] == 2 and steps["train"].metrics["epochs"] == 8
    assert steps["predict"].metrics["errors"] == 0 and steps["predict"].metrics["agreement"] == 1
    kinds = {p["metadata"]["ownerReferences"][0]["kind"] for p in standins.created_pods}
    assert kinds == {"PyTorchJob"}  # the predictor's pod is the Deployment controller's
    log = (tmp_path / "results" / "logs" / "train.log").read_text()
    assert "[minikf model archive: " in log and res.MODEL_BEGIN not in log


@pytest.mark.kube
def test_trainjob_when_only_kubeflow_trainer_is_ready(real_cluster, kube_ns, pinned_runtime_image, standins,
                                                      resources, tmp_path, monkeypatch):
    """Discovery (no forced flavor) finds the Trainer's controller ready and the Training
    Operator's absent, so the platform submits a TrainJob on the cluster's torch-distributed
    ClusterTrainingRuntime. Discovery is told the Trainer is ready rather than finding its
    Deployment: the stand-in plays it from this process, and a Deployment in the cluster-wide
    kubeflow-system namespace would change what every other test on the shared cluster finds.
    Two nodes: node 1 reaches node 0 through PET_MASTER_ADDR. The image has a pinned tag: a
    TrainJob cannot set imagePullPolicy, and a :latest image would always be pulled."""
    monkeypatch.delenv("MINIKF_KUBE_FLAVOR")
    monkeypatch.setattr("minikf.kube.flavor.controller_status",
                        lambda cluster: ({"kubeflow-trainer-controller-manager": "ready"}, []))
    platform = KubernetesPlatform(kubeconfig=str(real_cluster.kubeconfig), namespace=kube_ns,
                                  image=pinned_runtime_image)
    try:
        assert platform.train_kind == "TrainJob" and platform.flavors["training"] == "kubeflow"
        assert platform.kubeflow_problems() == []  # the runtime is installed
        request = _request("minikf-train-t", 2, [str(SAMPLE)], True, 240, tmp_path)
        platform.run_training(request, resources)
    finally:
        platform.close()
    assert (request.out / "model" / "model.pt").is_file()
    assert len((request.out / "metrics.jsonl").read_text().splitlines()) == 1
    pods = {p["metadata"]["name"]: p for p in standins.created_pods}
    assert set(pods) == {"minikf-train-t-node-0-0", "minikf-train-t-node-0-1"}
    assert pods["minikf-train-t-node-0-1"]["spec"]["containers"][0]["image"] == pinned_runtime_image
    assert resources.cleanup() == []


@pytest.mark.kube
def test_a_trainjob_on_a_latest_image_the_node_lacks_says_to_pin_a_tag(real_cluster, kube_ns, standins,
                                                                      resources, tmp_path, monkeypatch):
    """The kubelet's real pull failure for a TrainJob's :latest image (the stand-in plays the
    Trainer, discovery is told it is ready, as above): the error says a TrainJob cannot set
    imagePullPolicy and how to pin a tag."""
    monkeypatch.delenv("MINIKF_KUBE_FLAVOR")
    monkeypatch.setattr("minikf.kube.flavor.controller_status",
                        lambda cluster: ({"kubeflow-trainer-controller-manager": "ready"}, []))
    platform = KubernetesPlatform(kubeconfig=str(real_cluster.kubeconfig), namespace=kube_ns,
                                  image="minikf/not-loaded:latest")
    try:
        request = _request("minikf-train-p", 1, ["https://mirror.example/fm/"], False, 120, tmp_path)
        with pytest.raises(ClusterStepFailed) as exc:
            platform.run_training(request, resources)
    finally:
        platform.close()
    message = str(exc.value)
    assert "minikf-train-p-node-0-0 Pending [node: ImagePullBackOff (" in message
    assert message.endswith("(a TrainJob cannot set imagePullPolicy, so Kubernetes always pulls "
                            "minikf/not-loaded:latest: give the image a tag other than latest, "
                            "e.g. MINIKF_RUNTIME_IMAGE=<image>:<tag>)"), message
    assert resources.cleanup() == []


def test_component_versions_from_controller_images(tmp_path):
    """Still on FakeApiServer: the versions come from controller Deployments in the cluster-wide
    `kubeflow` namespace; making them on the shared cluster would change what every other test's
    discovery finds there."""
    def deployment(name: str, image: str) -> dict:
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": "kubeflow"},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}

    with FakeApiServer(crds=set(ALL_CRDS)) as api:
        api.objects[("apps", "kubeflow", "deployments", "training-operator")] = deployment(
            "training-operator", "docker.io/kubeflow/training-operator:v1-855e096")
        api.objects[("apps", "kubeflow", "deployments", "kserve-controller-manager")] = deployment(
            "kserve-controller-manager", "kserve/kserve-controller:v0.15.0")
        api.objects[("apps", "kubeflow", "deployments", "other")] = deployment("other", "x:1")
        platform = KubernetesPlatform(kubeconfig=str(api.kubeconfig(tmp_path)))
        info = platform.describe()
    assert info["components"] == {"Training Operator": "v1-855e096", "KServe": "v0.15.0"}


@pytest.mark.parametrize("tag, field", [("v2.1.0", "podTemplateOverrides"), ("v2.3.0", "runtimePatches"),
                                        (None, "runtimePatches")])
def test_the_trainjob_carries_the_data_volume_in_its_trainer_releases_field(tmp_path, tag, field):
    """Trainer 2.0/2.1 have no runtimePatches and an API server drops a field its CRD lacks: the
    platform reads the release from the controller's image and says what it sends. Still on
    FakeApiServer: it needs a Trainer controller Deployment in the cluster-wide kubeflow-system
    namespace (on the shared cluster every other test's discovery would find it), and the shared
    cluster's CRD is Trainer 2.3's."""
    with FakeApiServer(crds={("trainer.kubeflow.org", "v1alpha1", "trainjobs")}) as api:
        if tag:
            api.objects[("apps", "kubeflow-system", "deployments", "kubeflow-trainer-controller-manager")] = {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "kubeflow-trainer-controller-manager", "namespace": "kubeflow-system"},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "manager",
                     "image": f"ghcr.io/kubeflow/trainer/trainer-controller-manager:{tag}"}]}}}}
        platform = KubernetesPlatform(kubeconfig=str(api.kubeconfig(tmp_path)), namespace="team")
        assert field in platform.describe()["trainer_api"]
        if tag is None:
            assert "not readable" in platform.describe()["trainer_api"]
        resources = RunResources()
        with pytest.raises(ClusterStepFailed, match="TrainJob minikf-train-v not done after"):
            platform.run_training(_request("minikf-train-v", 2, [str(SAMPLE)], True, 1, tmp_path), resources)
        (job,) = [o for k, o in api.objects.items() if k[2] == "trainjobs"]
        assert list(job["spec"][field][0])[0] in ("targetJobs", "manager")
        assert resources.cleanup() == []
