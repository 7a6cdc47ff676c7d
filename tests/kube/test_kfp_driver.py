"""Pipelines on the kubernetes platform: the compiled IR submitted with kfp.Client.

No Kubeflow Pipelines API server runs here (the shared cluster has none either), so `FakeKfp` is
a real HTTP server that plays KFP's v2beta1 experiment and run endpoints (what kfp.Client calls)
and keeps what was submitted; the tests compare that with kfp's own compiler output. kfp.Client,
the compiler and the driver are the real ones, and so is the Kubernetes side where a test needs
one (tests marked `kube`): the API server, the ml-pipeline pod and the port-forward to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from http.server import ThreadingHTTPServer

import pytest
import yaml

from minikf.platforms.kubernetes import KubernetesPlatform
from minikf.runtime.processes import RunResources
from tests.kube.fake_apiserver import JsonHandler


class FakeKfp:
    """KFP's run API: experiments by name, runs created and read; `final_state` decides the end."""

    def __init__(self, final_state: str = "SUCCEEDED", multi_user: bool = False,
                 host: str = "127.0.0.1") -> None:
        self.final_state, self.host = final_state, host
        self.multi_user = multi_user  # refuse calls without kubeflow-userid, as multi-user KFP does
        self.runs: dict[str, dict] = {}
        self.experiments: list[dict] = []
        self.users: set[str | None] = set()
        self.terminated: list[str] = []

    def __enter__(self) -> FakeKfp:
        state = self

        class Handler(JsonHandler):
            def _identified(self) -> bool:
                if state.multi_user and not self.headers.get("kubeflow-userid"):
                    self._send(400, {"error": "Bad request: no user identity header", "code": 3,
                                     "message": "Bad request: no user identity header"})
                    return False
                return True

            def do_GET(self) -> None:  # noqa: N802
                if not self._identified():
                    return None
                if self.path.startswith("/apis/v2beta1/runs/"):
                    run = state.runs.get(self.path.rsplit("/", 1)[1])
                    if run is None:
                        return self._send(404, {"error": "run not found", "code": 5})
                    run["state"] = state.final_state
                    if state.final_state == "FAILED":
                        run["error"] = {"code": 2, "message": "task train: OOMKilled"}
                    return self._send(200, run)
                if self.path.startswith("/apis/v2beta1/experiments"):
                    return self._send(200, {"experiments": state.experiments} if state.experiments else {})
                return self._send(404, {"error": "not found", "code": 5})

            def do_POST(self) -> None:  # noqa: N802
                state.users.add(self.headers.get("kubeflow-userid"))
                if not self._identified():
                    return None
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"] or 0)) or b"{}")
                if self.path == "/apis/v2beta1/experiments":
                    experiment = {**body, "experiment_id": uuid.uuid4().hex}
                    state.experiments.append(experiment)
                    return self._send(200, experiment)
                if self.path.startswith("/apis/v2beta1/runs/") and self.path.endswith(":terminate"):
                    state.terminated.append(self.path.split("/")[-1].split(":")[0])
                    return self._send(200, {})
                if self.path == "/apis/v2beta1/runs":
                    run_id = uuid.uuid4().hex
                    state.runs[run_id] = {**body, "run_id": run_id, "state": "PENDING"}
                    return self._send(200, state.runs[run_id])
                return self._send(404, {"error": "not found", "code": 5})

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def _driver(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minikf.kube.kfp_driver", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def _compiled(name: str, tmp_path) -> dict:
    from kfp import compiler

    from minikf.pipelines.run_local import load_pipeline

    compiler.Compiler().compile(load_pipeline(name), str(tmp_path / "ir.yaml"))
    return yaml.safe_load((tmp_path / "ir.yaml").read_text())


def test_the_compiled_pipeline_is_submitted_and_waited_for(tmp_path):
    with FakeKfp() as kfp_api:
        env = {"MINIKF_KFP_HOST": kfp_api.url, "MINIKF_NAMESPACE": "team", "HOME": str(tmp_path),
               "MINIKF_KFP_USER": "user@example.com"}
        proc = _driver(env, "basics-sequential", "--root", "ignored",
                       "--arguments", '{"a": 3, "b": 4, "c": 5}')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert last["state"] == "SUCCEEDED" and last["output"] is None and last["seconds"] >= 0
    (run,) = kfp_api.runs.values()
    assert run["runtime_config"]["parameters"] == {"a": 3, "b": 4, "c": 5}
    assert run["display_name"].startswith("minikf-basics-sequential-")
    assert kfp_api.experiments[0]["display_name"] == "minikf"
    assert kfp_api.experiments[0]["namespace"] == "team"
    assert kfp_api.users == {"user@example.com"}  # multi-user KFP's identity header
    ir = _compiled("basics-sequential", tmp_path)
    submitted = run["pipeline_spec"]  # kfp.Client nests the IR and the platform spec
    assert submitted["pipeline_spec"]["pipelineInfo"] == ir["pipelineInfo"]
    assert submitted["pipeline_spec"]["root"] == ir["root"]
    assert submitted["pipeline_spec"]["components"] == ir["components"]
    executors = submitted["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    expected = {name: {"imagePullPolicy": "IfNotPresent"} for name in ir["deploymentSpec"]["executors"]}
    assert executors == expected


def test_a_notebook_is_compiled_with_kale_and_submitted(tmp_path):
    """Kale's security context and HOME stay in the submitted spec (a pod per step, as Kale
    expects); the pull policy is added beside them."""
    from tests.paths import ROOT

    notebook = ROOT / "notebooks" / "fashion-mnist-kale.ipynb"
    with FakeKfp() as kfp_api:
        proc = _driver({"MINIKF_KFP_HOST": kfp_api.url, "MINIKF_RUNTIME_IMAGE": "mirror.local/minikf:2",
                        "HOME": str(tmp_path)}, "--notebook", str(notebook),
                       "--package-out", str(tmp_path / "nb.yaml"), "--arguments", '{"epochs": 1}')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = kfp_api.runs.values()
    assert run["display_name"].startswith("minikf-fashion-mnist-kale-")
    assert run["runtime_config"]["parameters"] == {"epochs": 1}
    spec = run["pipeline_spec"]
    executors = spec["pipeline_spec"]["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {"mirror.local/minikf:2"}
    platform = spec["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert {(p["imagePullPolicy"], p["securityContext"]["runAsUser"]) for p in platform.values()} == {
        ("IfNotPresent", "65534")}
    assert (tmp_path / "nb.yaml").is_file()


def test_fashion_mnist_pipeline_uses_the_runtime_image(tmp_path):
    with FakeKfp() as kfp_api:
        proc = _driver({"MINIKF_KFP_HOST": kfp_api.url, "MINIKF_RUNTIME_IMAGE": "mirror.local/minikf:1",
                        "HOME": str(tmp_path)}, "fashion-mnist", "--arguments", '{"sample": true}')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = kfp_api.runs.values()
    executors = run["pipeline_spec"]["pipeline_spec"]["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {"mirror.local/minikf:1"}
    assert set(executors) == {"exec-download", "exec-preprocess", "exec-train", "exec-evaluate"}


def test_a_failed_run_says_so_and_exits_1(tmp_path):
    with FakeKfp(final_state="FAILED") as kfp_api:
        proc = _driver({"MINIKF_KFP_HOST": kfp_api.url, "HOME": str(tmp_path)}, "basics-sequential")
    assert proc.returncode == 1
    assert "finished with status FAILURE (state FAILED: task train: OOMKilled)" in proc.stdout


def test_an_unreachable_kfp_api_is_one_line(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"MINIKF_KFP_HOST": f"http://127.0.0.1:{port}", "HOME": str(tmp_path)}
    proc = _driver(env, "basics-sequential")
    assert proc.returncode == 2
    assert proc.stdout.strip().startswith("error: the Kubeflow Pipelines API:")
    assert "Traceback" not in proc.stdout + proc.stderr


# What the stand-in ml-pipeline pod runs: its port 8888 relayed to FakeKfp in the test's process.
RELAY = """
import socket, sys, threading
target = (sys.argv[1], int(sys.argv[2]))
server = socket.create_server(("0.0.0.0", 8888))

def pipe(src, dst):
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

while True:
    conn, _ = server.accept()
    upstream = socket.create_connection(target)
    for a, b in ((conn, upstream), (upstream, conn)):
        threading.Thread(target=pipe, args=(a, b), daemon=True).start()
"""


@contextlib.contextmanager
def kfp_relay_pod(real_cluster, namespace: str, image: str, port: int):
    """A Running pod labelled app=ml-pipeline whose port 8888 reaches FakeKfp on `port` of this
    network namespace (through the node's address: pods reach it, 127.0.0.1 is theirs); deleted
    on exit."""
    from tests.kube.standins import wait_until

    node = real_cluster.core().list_node().items[0]
    address = next(a.address for a in node.status.addresses if a.type == "InternalIP")
    name = "ml-pipeline-standin"
    core = real_cluster.core()
    core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "ml-pipeline"}},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0, "containers": [{
            "name": "relay", "image": image, "imagePullPolicy": "IfNotPresent",
            "command": ["python3", "-c", RELAY, address, str(port)],
            "readinessProbe": {"tcpSocket": {"port": 8888}, "periodSeconds": 1}}]}})
    try:
        wait_until(f"pod {name} ready", lambda: any(
            c.type == "Ready" and c.status == "True"
            for c in (core.read_namespaced_pod(name, namespace).status.conditions or [])))
        yield name
    finally:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


@pytest.mark.kube
def test_pipelines_capability_and_the_driver_through_the_platform(real_cluster, kube_ns, runtime_image,
                                                                  tmp_path, monkeypatch):
    """No KFP pod: not claimed, and the reason is said; with the pod: claimed, and the pipeline
    step's driver runs kfp_driver through a real port-forward to it. The cluster has no KFP API
    server: the pod (app=ml-pipeline, in the test's namespace as MINIKF_KFP_NAMESPACE) relays
    its port 8888 to FakeKfp."""
    from minikf.kube import kfp_driver

    monkeypatch.delenv("MINIKF_KFP_HOST", raising=False)
    monkeypatch.setenv("MINIKF_KFP_NAMESPACE", kube_ns)
    kubeconfig = str(real_cluster.kubeconfig)
    with FakeKfp(host="0.0.0.0") as kfp_api:
        platform = KubernetesPlatform(kubeconfig=kubeconfig, namespace=kube_ns)
        platform.close()
        assert "pipelines" not in platform.capabilities
        assert platform.missing(["pipelines"]) == [
            f"pipelines (Kubeflow Pipelines API not found: no app=ml-pipeline pod in namespace '{kube_ns}')"]
        with kfp_relay_pod(real_cluster, kube_ns, runtime_image, kfp_api.port):
            platform = KubernetesPlatform(kubeconfig=kubeconfig, namespace=kube_ns)
            platform.close()
            assert "pipelines" in platform.capabilities
            for key, value in {"MINIKF_KUBECONFIG": kubeconfig, "MINIKF_NAMESPACE": kube_ns,
                               "HOME": str(tmp_path)}.items():
                monkeypatch.setenv(key, value)
            assert kfp_driver.main(["basics-sequential", "--arguments", '{"a": 1, "b": 2, "c": 3}']) == 0
        assert len(kfp_api.runs) == 1
        assert kfp_api.experiments[0]["namespace"] == kube_ns


@pytest.mark.kube
def test_launch_runs_the_kfp_driver_for_the_pipeline_step(real_cluster, kube_ns, tmp_path, monkeypatch):
    with FakeKfp() as kfp_api:
        monkeypatch.setenv("MINIKF_KFP_HOST", kfp_api.url)
        monkeypatch.setenv("HOME", str(tmp_path))
        platform = KubernetesPlatform(kubeconfig=str(real_cluster.kubeconfig), namespace=kube_ns)
        assert "pipelines" in platform.capabilities
        resources = RunResources()
        argv = [sys.executable, "-m", "minikf.pipelines.run_local", "basics-sequential",
                "--root", str(tmp_path / "root"), "--arguments", '{"a": 1, "b": 1, "c": 1}']
        proc = platform.launch(argv, {}, tmp_path / "pipeline.log", resources)
        assert proc.wait(timeout=120) == 0, (tmp_path / "pipeline.log").read_text()
        resources.cleanup()
        (run,) = kfp_api.runs.values()
    assert kfp_api.experiments[0]["namespace"] == kube_ns
    with pytest.raises(Exception, match="does not run on this host"):
        platform.launch(["python", "-m", "minikf.workload.server"], {}, tmp_path / "x.log", RunResources())
    platform.close()


def test_the_platform_spec_is_one_kfp_accepts(tmp_path):
    """The pull policy travels in KFP's PlatformSpec, parsed here by kfp's own proto."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    from minikf.kube.kfp_driver import compile_package
    from minikf.pipelines.run_local import load_pipeline

    path = compile_package(load_pipeline("fashion-mnist"), tmp_path / "p.yaml")
    spec, platform = yaml.safe_load_all(path.read_text())
    parsed = json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())
    executors = json_format.MessageToDict(parsed)["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == set(spec["deploymentSpec"]["executors"])
    assert {e["imagePullPolicy"] for e in executors.values()} == {"IfNotPresent"}


def test_a_stopped_driver_terminates_its_run(tmp_path):
    """The engine's cleanup sends SIGTERM: the run on the cluster is terminated, not left running."""
    import signal
    import time

    with FakeKfp(final_state="RUNNING") as kfp_api:
        proc = subprocess.Popen([sys.executable, "-m", "minikf.kube.kfp_driver", "basics-sequential"],
                                stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "MINIKF_KFP_HOST": kfp_api.url, "HOME": str(tmp_path)})
        try:
            deadline = time.monotonic() + 60
            while not kfp_api.runs and time.monotonic() < deadline:
                time.sleep(0.2)
            assert kfp_api.runs, "the driver submitted no run"
            time.sleep(1)
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 1
        assert kfp_api.terminated == list(kfp_api.runs)
        assert "terminated (Stopped)" in out


def test_a_run_cancelled_elsewhere_ends_the_wait_at_once(tmp_path):
    """kfp.Client's own wait does not count CANCELED as an end and would wait the timeout out."""
    import time

    with FakeKfp(final_state="CANCELED") as kfp_api:
        started = time.monotonic()
        proc = _driver({"MINIKF_KFP_HOST": kfp_api.url, "HOME": str(tmp_path)}, "basics-sequential",
                       "--timeout", "100")
    assert time.monotonic() - started < 60
    assert proc.returncode == 1
    assert "state CANCELED (cancelled outside minikf" in proc.stdout
    assert kfp_api.terminated == []


def test_every_state_a_run_cannot_leave_ends_the_wait():
    """FINAL_STATES against the states kfp_server_api (the client of this KFP API) knows."""
    import kfp_server_api

    from minikf.kube.kfp_driver import FINAL_STATES

    known = set(kfp_server_api.V2beta1RuntimeState.allowable_values)
    assert FINAL_STATES <= known
    assert known - FINAL_STATES == {"RUNTIME_STATE_UNSPECIFIED", "PENDING", "RUNNING", "PAUSED"}


@pytest.mark.kube
def test_multi_user_kfp_gets_the_namespace_owner_as_kubeflow_userid(real_cluster, kube_ns, tmp_path,
                                                                    monkeypatch):
    """The platform reads the namespace's `owner` annotation (a profile's, or the appliance's
    minikf namespace's) from the real API server and the driver sends it; without one, the error
    says what to set. The test annotates its own namespace."""
    monkeypatch.delenv("MINIKF_KFP_USER", raising=False)
    with FakeKfp(multi_user=True) as kfp_api:
        monkeypatch.setenv("MINIKF_KFP_HOST", kfp_api.url)
        monkeypatch.setenv("HOME", str(tmp_path))
        argv = [sys.executable, "-m", "minikf.pipelines.run_local", "basics-sequential",
                "--arguments", '{"a": 1, "b": 1, "c": 1}']

        platform = KubernetesPlatform(kubeconfig=str(real_cluster.kubeconfig), namespace=kube_ns)
        try:
            resources = RunResources()
            proc = platform.launch(argv, {}, tmp_path / "none.log", resources)
            assert proc.wait(timeout=120) == 2
            resources.cleanup()
            log = (tmp_path / "none.log").read_text()
            assert "multi-user and wants the kubeflow-userid header: set MINIKF_KFP_USER" in log
            assert not kfp_api.runs

            owner = f"system:serviceaccount:{kube_ns}:minikf-runner"
            real_cluster.core().patch_namespace(kube_ns, {"metadata": {"annotations": {"owner": owner}}})
            assert platform.kfp_user() == owner
            resources = RunResources()
            proc = platform.launch(argv, {}, tmp_path / "owner.log", resources)
            assert proc.wait(timeout=120) == 0, (tmp_path / "owner.log").read_text()
            resources.cleanup()
        finally:
            platform.close()
    assert kfp_api.users == {owner}
    assert len(kfp_api.runs) == 1
