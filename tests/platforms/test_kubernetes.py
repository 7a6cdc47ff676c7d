"""KubernetesPlatform against a fake cluster.

No Kubernetes control plane can run here. The API server is FakeApiServer (a real HTTP server on
127.0.0.1, tests/kube/fake_apiserver.py) and `Controllers` below plays the Training Operator and
KServe: it runs the pods' own commands from the objects the platform created, as local processes
(each PyTorchJob replica with the operator's MASTER_ADDR/WORLD_SIZE/RANK, the ConfigMaps written
out where they would be mounted), keeps their output as pod logs and sets the status conditions.
The one piece replaced outright is the port-forward's websocket to the API server: its relay
connects straight to the predictor process instead. Everything else — the kubernetes client,
the SDK-checked objects, the journey's steps, the model server, predict — is the real code.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from minikf.kube import objects as res
from minikf.platforms.base import TrainRequest
from minikf.platforms.kubernetes import ClusterStepFailed, KubernetesPlatform
from minikf.runtime.errors import MinikfError
from minikf.runtime.ports import free_port
from minikf.runtime.processes import RunResources
from minikf.workload.contract import worker_env
from tests.kube.fake_apiserver import FakeApiServer
from tests.paths import ROOT

SAMPLE = ROOT / "data" / "fashion-mnist-sample"
ALL_CRDS = {("kubeflow.org", "v1", "pytorchjobs"), ("serving.kserve.io", "v1beta1", "inferenceservices")}


class Controllers:
    """Plays the Training Operator and KServe for the objects in a FakeApiServer."""

    def __init__(self, api: FakeApiServer, tmp: Path, fail_job: bool = False) -> None:
        self.api, self.tmp, self.fail_job = api, tmp, fail_job
        self.procs: list[subprocess.Popen] = []
        self.started: set[str] = set()
        api.on_get = self.on_get

    def _mount(self, ns: str, volume: dict) -> Path:
        """A projected volume of ConfigMaps, written out as the kubelet would."""
        target = self.tmp / "mounts" / f"{volume['name']}-{len(self.started)}"
        target.mkdir(parents=True, exist_ok=True)
        for source in volume["projected"]["sources"]:
            obj = self.api.objects[("", ns, "configmaps", source["configMap"]["name"])]
            for name, data in obj["binaryData"].items():
                (target / name).write_bytes(base64.b64decode(data))
        return target

    def on_get(self, obj: dict) -> None:
        name, ns = obj["metadata"]["name"], obj["metadata"]["namespace"]
        if name not in self.started:
            self.started.add(name)
            runners = {"PyTorchJob": self._run_job, "TrainJob": self._run_trainjob}
            runner = runners.get(obj["kind"], self._serve)
            threading.Thread(target=runner, args=(obj, name, ns), daemon=True).start()

    def _pod(self, ns: str, name: str, labels: dict, phase: str) -> None:
        self.api.objects[("", ns, "pods", name)] = {
            "apiVersion": "v1", "kind": "Pod", "status": {"phase": phase},
            "metadata": {"name": name, "namespace": ns, "labels": labels}}

    def _run_job(self, obj: dict, name: str, ns: str) -> None:
        specs = obj["spec"]["pytorchReplicaSpecs"]
        world = sum(s["replicas"] for s in specs.values())
        port, procs, rank = free_port(), [], 0
        for replica_type in ("Master", "Worker"):
            spec = specs.get(replica_type)
            for _ in range(spec["replicas"] if spec else 0):
                pod = spec["template"]["spec"]
                argv = list(pod["containers"][0]["command"])
                if pod.get("volumes"):
                    mount = self._mount(ns, pod["volumes"][0])
                    argv = [str(mount) if a == res.DATA_MOUNT else a for a in argv]
                if self.fail_job:
                    argv = ["python", "-c", "import sys; print('CUDA error: out of memory'); sys.exit(3)"]
                env = {**os.environ, **worker_env(rank, world, port)}
                log = self.tmp / f"{name}-{rank}.log"
                with open(log, "wb") as out:
                    procs.append(subprocess.Popen([sys.executable, *argv[1:]], stdout=out,
                                                  stderr=subprocess.STDOUT, env=env))
                pod_name = f"{name}-{replica_type.lower()}-{rank}"
                self._pod(ns, pod_name, {"training.kubeflow.org/job-name": name,
                                         "training.kubeflow.org/replica-type": replica_type.lower()},
                          "Running")
                rank += 1
        self.procs += procs
        codes = [p.wait(timeout=600) for p in procs]
        self.api.logs[(ns, f"{name}-master-0")] = (self.tmp / f"{name}-0.log").read_text()
        ok = all(c == 0 for c in codes)
        obj["status"] = {"conditions": [{"type": "Succeeded" if ok else "Failed", "status": "True",
                                         "message": "" if ok else f"exit codes {codes}"}]}

    def _run_trainjob(self, obj: dict, name: str, ns: str) -> None:
        """Node 0 of the torch-distributed runtime, with the PET_* variables its torch plugin sets."""
        trainer = obj["spec"]["trainer"]
        assert trainer["numNodes"] == 1 and trainer["numProcPerNode"] == 1
        pod = obj["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"][
            "replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
        mount = self._mount(ns, pod["volumes"][0])
        argv = [str(mount) if a == res.DATA_MOUNT else a for a in trainer["command"][1:]]
        assert argv[:2] == ["-m", "minikf.kube.job_entry"]
        pet = {"PET_NNODES": "1", "PET_NODE_RANK": "0", "PET_NPROC_PER_NODE": "1",
               "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(free_port())}
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR")}
        proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=600,
                              env={**env, **pet})
        pod_name = f"{name}-node-0-0"
        self._pod(ns, pod_name, {"jobset.sigs.k8s.io/jobset-name": name,
                                 "batch.kubernetes.io/job-completion-index": "0"}, "Succeeded")
        self.api.logs[(ns, pod_name)] = proc.stdout + proc.stderr
        kind = "Complete" if proc.returncode == 0 else "Failed"
        obj["status"] = {"conditions": [{"type": kind, "status": "True"}]}

    def _serve(self, obj: dict, name: str, ns: str) -> None:
        pod = obj["spec"]["predictor"]
        container = pod["containers"][0]
        mount = self._mount(ns, pod["volumes"][0])
        secret = container["env"][0]["valueFrom"]["secretKeyRef"]["name"]
        token = self.api.objects[("", ns, "secrets", secret)]["stringData"]["token"]
        self.port = free_port()
        argv = [sys.executable, "-m", "minikf.workload.server", "--model-dir", str(mount),
                "--port", str(self.port)]  # 127.0.0.1 here: the pod's own network namespace
        with open(self.tmp / f"{name}.log", "wb") as out:
            self.procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                               env={**os.environ, "MINIKF_SERVE_TOKEN": token}))
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        self._pod(ns, f"{name}-predictor-0", {"serving.kserve.io/inferenceservice": name}, "Running")
        obj["status"] = {"conditions": [{"type": "Ready", "status": "True"}], "url": f"http://{name}.{ns}"}

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)


@pytest.fixture(autouse=True)
def kubeflow_flavor(monkeypatch):
    """The fake API server runs no controller Deployments: these tests force the kubeflow flavor."""
    monkeypatch.setenv("MINIKF_KUBE_FLAVOR", "kubeflow")


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """(FakeApiServer, Controllers, kubeconfig) with the Training Operator and KServe CRDs."""
    with FakeApiServer(crds=set(ALL_CRDS)) as api:
        controllers = Controllers(api, tmp_path)
        # the websocket port-forward needs a real API server: connect the relay to the process
        monkeypatch.setattr("minikf.kube.portforward.PortForward._open",
                            lambda self: socket.create_connection(("127.0.0.1", controllers.port)))
        try:
            yield api, controllers, api.kubeconfig(tmp_path)
        finally:
            controllers.stop()


def test_capabilities_follow_the_crds(tmp_path):
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


def test_missing_permission_is_named_before_anything_is_created(tmp_path):
    with FakeApiServer(crds=set(ALL_CRDS), allowed={("create", "configmaps", "")}) as api:
        platform = KubernetesPlatform(kubeconfig=str(api.kubeconfig(tmp_path)))
        request = _request("minikf-train-x", 2, [str(SAMPLE)], True, 60, tmp_path)
        with pytest.raises(MinikfError) as exc:
            platform.run_training(request, RunResources())
    assert "missing permissions in namespace 'team'" in exc.value.message
    assert "create pytorchjobs.kubeflow.org" in exc.value.message
    assert "get pods/log" in exc.value.message
    assert not api.objects


def test_failed_job_says_why_with_the_rank0_log_and_cleans_up(cluster, tmp_path):
    api, controllers, kubeconfig = cluster
    controllers.fail_job = True
    platform = KubernetesPlatform(kubeconfig=str(kubeconfig))
    resources = RunResources()
    request = _request("minikf-train-y", 2, [str(SAMPLE)], True, 120, tmp_path)
    with pytest.raises(ClusterStepFailed) as exc:
        platform.run_training(request, resources)
    assert "PyTorchJob minikf-train-y failed: exit codes [3, 3]" in str(exc.value)
    assert "CUDA error: out of memory" in str(exc.value)
    assert resources.cleanup() == []
    assert not [k for k in api.objects if k[2] in ("pytorchjobs", "configmaps")]
    assert {k[2] for k in api.deleted} == {"pytorchjobs", "configmaps"}


def test_what_a_killed_run_created_is_removed_through_its_record(cluster, tmp_path):
    """The run noted in its live record what it labels on the cluster; its reaper (or `minikf
    clean`) deletes those objects when the run was killed before its cleanup could."""
    from minikf.runtime.liverun import LiveRun

    api, controllers, kubeconfig = cluster
    api.on_get = None  # no controller: the job never finishes, as when minikf is killed
    platform = KubernetesPlatform(kubeconfig=str(kubeconfig))
    record = LiveRun.create("k1", home=tmp_path)
    resources = RunResources(run_id="k1", record=record)
    request = _request("minikf-train-k", 1, [str(SAMPLE)], True, 2, tmp_path)
    expected = "not done after 1s; no pods .* were created .*is its controller running"
    with pytest.raises(ClusterStepFailed, match=expected):
        platform.run_training(request, resources)
    created = sorted((k[2], k[3]) for k in api.objects if k[2] in ("pytorchjobs", "configmaps"))
    assert ("pytorchjobs", "minikf-train-k") in created
    details = LiveRun.load(record.path).platform_leftovers["kubernetes"]
    assert details["namespace"] == "team" and details["kubeconfig"] == str(kubeconfig)
    lines = KubernetesPlatform.reap(details)  # instead of the run's cleanup: it was killed
    assert sorted(lines) == sorted(
        f"removed {'ConfigMap' if kind == 'configmaps' else kind} {name} in namespace team"
        for kind, name in created)
    assert not [k for k in api.objects if k[2] in ("pytorchjobs", "configmaps")]
    assert KubernetesPlatform.reap(details) == []
    resources.callbacks.clear()


def test_remote_mirrors_are_passed_to_the_pods_and_nothing_is_shipped(cluster, tmp_path):
    api, controllers, kubeconfig = cluster
    api.on_get = None  # no controller: only look at what was created
    platform = KubernetesPlatform(kubeconfig=str(kubeconfig))
    resources = RunResources()
    request = _request("minikf-train-z", 2, ["https://mirror.example/fm/"], False, 0.1, tmp_path)
    api.objects[("", "team", "pods", "minikf-train-z-master-0")] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "minikf-train-z-master-0",
                     "labels": {"training.kubeflow.org/job-name": "minikf-train-z"}},
        "status": {"phase": "Pending", "containerStatuses": [{
            "name": "pytorch", "image": "minikf/runtime:latest", "imageID": "", "ready": False,
            "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull",
                                                     "message": "pull access denied\nmore"}}}]}}
    with pytest.raises(ClusterStepFailed) as exc:
        platform.run_training(request, resources)
    assert str(exc.value) == ("PyTorchJob minikf-train-z not done after 0.05s; pods: "
                              "minikf-train-z-master-0 Pending [pytorch: ErrImagePull (pull access denied)]")
    job = api.objects[("kubeflow.org", "team", "pytorchjobs", "minikf-train-z")]
    argv = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["command"]
    assert argv[argv.index("--mirrors") + 1] == "https://mirror.example/fm/" and "--sample" not in argv
    assert not [k for k in api.objects if k[2] == "configmaps"]
    resources.cleanup()
    assert not [k for k in api.objects if k[2] != "pods"]


@pytest.mark.slow
def test_fashion_mnist_journey_on_the_fake_cluster(cluster, tmp_path):
    """The whole journey through the platform: the sample shipped as a ConfigMap, a PyTorchJob of
    two workers (real torch.distributed processes), the model back from the master's log,
    evaluated here, served by an InferenceService (the real KServe model server), predicted
    through the port-forward relay with the token; every object deleted at the end. 8 epochs
    reach 0.707-0.820 over 30 seeds, clear of the scenario's 0.65 on any CPU (0.75 was not)."""
    from minikf.engine.runner import run_scenario
    from minikf.scenario import load_scenario

    api, controllers, kubeconfig = cluster
    platform = KubernetesPlatform(kubeconfig=str(kubeconfig), namespace="team")
    result = run_scenario(load_scenario(ROOT / "scenarios" / "fashion-mnist.yaml"), platform,
                          tmp_path / "results", params={"epochs": 8})
    steps = {s.name: s for s in result.steps}
    assert result.status == "passed", [(s.name, s.status, s.message) for s in result.steps]
    assert steps["train"].metrics["workers"] == 2 and steps["train"].metrics["epochs"] == 8
    assert steps["predict"].metrics["errors"] == 0 and steps["predict"].metrics["agreement"] == 1
    kinds = {k[2] for k in api.deleted}
    assert {"pytorchjobs", "inferenceservices", "configmaps", "secrets"} <= kinds
    assert not [k for k in api.objects if k[2] != "pods"]  # pods are the controllers' to remove
    log = (tmp_path / "results" / "logs" / "train.log").read_text()
    assert "[minikf model archive: " in log and res.MODEL_BEGIN not in log


@pytest.mark.slow
def test_trainjob_when_only_kubeflow_trainer_is_installed(tmp_path):
    """A cluster with Trainer's TrainJob CRD and no Training Operator: the platform submits a
    TrainJob; the test controller runs its command as node 0 of the torch runtime would."""
    with FakeApiServer(crds={("trainer.kubeflow.org", "v1alpha1", "trainjobs")}) as api:
        controllers = Controllers(api, tmp_path)
        try:
            platform = KubernetesPlatform(kubeconfig=str(api.kubeconfig(tmp_path)))
            assert platform.train_kind == "TrainJob"
            resources = RunResources()
            request = _request("minikf-train-t", 1, [str(SAMPLE)], True, 300, tmp_path)
            platform.run_training(request, resources)
            out = request.out
            assert (out / "model" / "model.pt").is_file()
            assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
            assert resources.cleanup() == []
            assert not [k for k in api.objects if k[2] in ("trainjobs", "configmaps")]
        finally:
            controllers.stop()


def test_component_versions_from_controller_images(tmp_path):
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
    platform reads the release from the controller's image and says what it sends."""
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
