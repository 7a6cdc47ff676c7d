"""The appliance's own logic: kind config, components and mirrors, preflight, installer, status.

No kind binary and no Kubernetes control plane can run here. What is real: the generated kind
config checked by strict models of kind's v1alpha4 types, `kubectl kustomize` on the local overlays,
the `minikf` CLI run as a subprocess with PATH cut down (the acceptance check: it stops at
preflight), the real kubectl talking to an unreachable server (the diagnostics bundle), and
`minikf status` against FakeApiServer (tests/kube/fake_apiserver.py), a real HTTP server on
127.0.0.1 playing the API server's deployment lists.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from minikf.appliance import components as comp
from minikf.appliance import kindconfig, preflight
from minikf.appliance.install import Installer, collect_diagnostics
from minikf.appliance.status import health
from minikf.appliance.tools import Tools, parse_version
from minikf.runtime.errors import MinikfError
from tests.kube.fake_apiserver import FakeApiServer

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed here "
                                   "(.ci/setup.d/30-appliance.sh installs Debian's kubernetes-client)")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unreachable_kubeconfig(directory: Path) -> Path:
    path = directory / "unreachable.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": f"https://127.0.0.1:{_closed_port()}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u"}}],
    }))
    return path


def _minikf(*args: str, path: str | None = None, home: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    if home is not None:
        env["MINIKF_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "minikf.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


# --- kind config -------------------------------------------------------------------------------

def test_kind_config_is_v1alpha4_with_loopback_ports_and_data_mount(tmp_path):
    text = kindconfig.render(kindconfig.KindSettings(name="demo", gateway_port=18080, data_dir=tmp_path))
    doc = yaml.safe_load(text)
    assert doc["apiVersion"] == "kind.x-k8s.io/v1alpha4" and doc["kind"] == "Cluster"
    assert doc["name"] == "demo" and doc["networking"]["apiServerAddress"] == "127.0.0.1"
    (node,) = doc["nodes"]
    assert node["role"] == "control-plane" and node["image"] == comp.KIND_NODE_IMAGE
    assert "@sha256:" in node["image"]
    assert node["extraPortMappings"] == [{"containerPort": kindconfig.GATEWAY_NODE_PORT, "hostPort": 18080,
                                          "listenAddress": "127.0.0.1", "protocol": "TCP"}]
    assert node["extraMounts"] == [{"containerPath": "/var/local-path-provisioner",
                                    "hostPath": str(tmp_path)}]
    patch = yaml.safe_load(node["kubeadmConfigPatches"][0])
    assert patch["kind"] == "ClusterConfiguration"
    assert patch["apiServer"]["extraArgs"]["service-account-issuer"] == "https://kubernetes.default.svc"
    assert "containerdConfigPatches" not in doc
    assert kindconfig.load(text).name == "demo"  # round-trips through the strict models


def test_kind_config_with_gpus_wires_the_nvidia_runtime():
    doc = yaml.safe_load(kindconfig.render(kindconfig.KindSettings(gpus=True)))
    mounts = doc["nodes"][0]["extraMounts"]
    assert {"containerPath": "/var/run/nvidia-container-devices/all", "hostPath": "/dev/null"} in mounts
    (patch,) = doc["containerdConfigPatches"]
    assert 'runtimes.nvidia]' in patch and "/usr/bin/nvidia-container-runtime" in patch
    assert doc["nodes"][0]["labels"]["nvidia.com/gpu.present"] == "true"


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.update(apiVersion="kind.x-k8s.io/v1alpha3"), "apiVersion"),
    (lambda d: d["nodes"][0].update(extraPortMapping=[]), "nodes.0.extraPortMapping"),
    (lambda d: d["nodes"][0]["extraMounts"][0].update(propagation="Shared"), "propagation"),
    (lambda d: d.update(name="Not_A_DNS_Name"), "name"),
])
def test_kind_config_rejects_what_kind_would(mutate, field, tmp_path):
    doc = yaml.safe_load(kindconfig.render(kindconfig.KindSettings(data_dir=tmp_path)))
    mutate(doc)
    with pytest.raises(MinikfError) as exc:
        kindconfig.load(yaml.safe_dump(doc), "cfg.yaml")
    assert exc.value.message.startswith("cfg.yaml: ") and field in exc.value.message


# --- components and mirrors --------------------------------------------------------------------

def test_components_resolve_with_their_needs_in_install_order():
    names = [c.name for c in comp.resolve(["pipelines"])]
    assert names == ["cert-manager", "istio", "kubeflow-base", "profiles", "pipelines"]
    assert [c.name for c in comp.resolve(["kserve"], gpus=True)][-1] == "gpu"
    assert "gpu" not in [c.name for c in comp.resolve(None)]
    with pytest.raises(MinikfError, match="unknown tensorflow"):
        comp.resolve(["tensorflow"])


def test_every_component_waits_with_a_timeout_and_needs_only_earlier_components():
    order = list(comp.COMPONENTS)
    for c in comp.COMPONENTS.values():
        assert all(order.index(n) < order.index(c.name) for n in c.needs), c.name
        assert all(0 < w.timeout_s <= 900 for w in c.waits)


def test_mirror_targets(tmp_path):
    step = comp.Apply("common/cert-manager/base")
    assert comp.Mirrors().target(step) == ("https://github.com/kubeflow/manifests//common/cert-manager/base"
                                           f"?ref={comp.KUBEFLOW_VERSION}")
    (tmp_path / "common/cert-manager/base").mkdir(parents=True)
    local = comp.Mirrors.from_args([f"kubeflow-manifests={tmp_path}"], environ={})
    assert local.target(step) == str(tmp_path / "common/cert-manager/base")
    env = comp.Mirrors.from_args([], environ={"MINIKF_MIRROR_KUBEFLOW_MANIFESTS": "https://git.bank/kf@v1.10.1"})
    assert env.target(step) == "https://git.bank/kf//common/cert-manager/base?ref=v1.10.1"
    with pytest.raises(MinikfError, match="does not exist"):
        comp.Mirrors.from_args([f"kubeflow-manifests={tmp_path}"], environ={}).target(comp.Apply("nope"))
    with pytest.raises(MinikfError, match="unknown source 'kf'"):
        comp.Mirrors.from_args(["kf=/x"], environ={})
    with pytest.raises(MinikfError, match="expected NAME=LOCATION"):
        comp.Mirrors.from_args(["kubeflow-manifests"], environ={})


@needs_kubectl
@pytest.mark.parametrize("overlay", ["base/minikf-namespace", "overlays/gpu"])
def test_local_overlays_build_offline_with_kubectl_kustomize(overlay):
    target = comp.Mirrors().target(comp.Apply(overlay, source="minikf"))
    result = Tools().run("kubectl", "kustomize", target, timeout_s=60)
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert docs and all(d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "minikf" for d in docs)
    kinds = {d["kind"] for d in docs}
    if overlay == "overlays/gpu":
        assert kinds == {"RuntimeClass", "DaemonSet"}
        (ds,) = [d for d in docs if d["kind"] == "DaemonSet"]
        image = ds["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == comp.NVIDIA_DEVICE_PLUGIN_IMAGE
    else:
        assert kinds == {"Namespace", "ServiceAccount", "RoleBinding"}


# --- preflight ---------------------------------------------------------------------------------

def test_up_without_docker_or_kind_stops_at_preflight(tmp_path):
    """The acceptance check, for real: PATH holds only python, so docker, kind and kubectl are absent."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    result = _minikf("up", "--driver", "kind", "-c", "training-operator", path=str(bin_dir),
                     home=tmp_path / "h")
    assert result.returncode == 2, result.stderr
    err = result.stderr
    assert "Traceback" not in err and err.startswith("error: preflight for minikf up --driver kind")
    assert "nothing was created" in err
    assert "  docker: not found on PATH; install Docker Engine" in err
    assert "  kind: not found on PATH; install kind v0.27.0" in err
    assert "  kubectl: not found on PATH" in err
    assert not (tmp_path / "h").exists()  # no config, no kubeconfig, no cluster


def test_preflight_with_a_docker_that_is_not_running(tmp_path):
    """A `docker` on PATH whose engine does not answer: the real docker CLI pointed at a dead socket."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI here")
    tools = Tools(env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    (check,) = preflight.check_docker(tools)
    assert not check.ok and check.name == "docker engine" and "sudo systemctl start docker" in check.fix


def test_inotify_limits(tmp_path):
    """A stand-in /proc/sys (files with the values) since the host's limits cannot be changed by a test."""
    (tmp_path / "fs/inotify").mkdir(parents=True)
    (tmp_path / "fs/inotify/max_user_watches").write_text("8192\n")
    (tmp_path / "fs/inotify/max_user_instances").write_text("1024\n")
    watches, instances = preflight.check_inotify(tmp_path)
    assert not watches.ok and "sudo sysctl -w fs.inotify.max_user_watches=524288" in watches.fix
    assert instances.ok
    with pytest.raises(MinikfError) as exc:
        preflight.require([watches, instances])
    assert exc.value.message.count("\n") == 1
    assert "max_user_watches: 8192, need >= 524288" in exc.value.message


@needs_kubectl
def test_kubectl_and_kustomize_versions_are_read_from_the_real_kubectl():
    checks = {c.name: c for c in preflight.check_kubernetes_tools(Tools())}
    assert checks["kubectl"].detail.startswith("v1.")
    kustomize = checks["kustomize (kubectl kustomize)"]
    known = kustomize.detail != "version unknown"
    assert kustomize.ok == (known and parse_version(kustomize.detail) >= (5, 0, 0))


def test_needs_grow_with_components():
    small = preflight.needs_for(comp.resolve(["training-operator"]))
    full = preflight.needs_for(comp.resolve(None))
    assert small.cpus == 2 and full.cpus > small.cpus and full.memory_gib > 10 > small.memory_gib
    assert full.disk_gib > small.disk_gib


def test_gpu_preflight_without_nvidia(tmp_path):
    checks = {c.name: c for c in preflight.check_gpu(Tools(path=str(tmp_path)), tmp_path / "config.toml")}
    assert not checks["nvidia-smi"].ok and "NVIDIA driver" in checks["nvidia-smi"].fix
    assert not checks["nvidia-ctk"].ok
    assert "accept-nvidia-visible-devices-as-volume-mounts=true" in checks["nvidia runtime config"].fix


# --- installer and diagnostics -----------------------------------------------------------------

@needs_kubectl
def test_wait_timeout_writes_a_diagnostics_bundle_named_in_the_error(tmp_path):
    kubeconfig = _unreachable_kubeconfig(tmp_path)
    installer = Installer(Tools(), kubeconfig, comp.Mirrors(), tmp_path / "diag", poll_s=0.1)
    with pytest.raises(MinikfError) as exc:
        installer.wait(comp.COMPONENTS["training-operator"], comp.Wait("kubeflow", ("training-operator",), 5))
    message = exc.value.message
    assert message.startswith("training-operator: deployments in namespace kubeflow not Available within 5s")
    bundle = Path(message.rsplit("diagnostics: ", 1)[1])
    assert bundle.is_file() and bundle.name.startswith("training-operator-") and bundle.suffix == ".gz"
    with tarfile.open(bundle) as tar:
        names = {Path(n).name for n in tar.getnames()}
        assert {"events.txt", "pods.txt", "describe-pods.txt", "describe-deployments.txt"} <= names
        events = tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith("events.txt"))).read()
    assert b"$ kubectl get events -n kubeflow" in events and b"connection refused" in events


@needs_kubectl
def test_apply_builds_with_kustomize_and_names_the_failure(tmp_path):
    installer = Installer(Tools(), _unreachable_kubeconfig(tmp_path), comp.Mirrors(), tmp_path,
                          apply_attempts=2, retry_wait_s=0)
    said = []
    installer.say = said.append
    with pytest.raises(MinikfError) as exc:
        installer.install([comp.COMPONENTS["minikf"]])
    assert exc.value.message.startswith("minikf: `kubectl apply` of base/minikf-namespace failed 2 times")
    assert "connection refused" in exc.value.message and len(said) == 2  # "installing" + one retry


@needs_kubectl
def test_collect_diagnostics_keeps_each_commands_output(tmp_path):
    kubeconfig = _unreachable_kubeconfig(tmp_path)
    bundle = collect_diagnostics(Tools(), kubeconfig, "istio-system", tmp_path, "istio")
    pods = tmp_path / bundle.name.removesuffix(".tar.gz") / "pods.txt"
    assert bundle.exists() and pods.read_text().startswith("$ kubectl get pods -n istio-system -o wide")


def test_object_refs_name_each_object_so_kubectl_cannot_mistake_its_kind():
    from minikf.appliance.install import object_refs

    refs = object_refs("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
                       "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d, namespace: a}\n---\n")
    assert [(r.resource, r.namespace, r.name) for r in refs] == [
        ("Namespace.v1.", "", "a"), ("DaemonSet.v1.apps", "a", "d")]


def test_remove_deletes_in_reverse_with_namespaces_last(tmp_path, monkeypatch):
    from minikf.appliance.install import ObjectRef

    installer = Installer(Tools(), tmp_path / "k", comp.Mirrors(), tmp_path)
    calls = []

    def kubectl(*args, **kw):
        calls.append(args[:args.index("--ignore-not-found")])
        return type("R", (), {"ok": True, "last_line": lambda self: ""})()

    monkeypatch.setattr(installer, "_kubectl", kubectl)
    refs = [ObjectRef("v1", "Namespace", "", "ns"), ObjectRef("v1", "ServiceAccount", "ns", "a"),
            ObjectRef("v1", "ServiceAccount", "ns", "b"),
            ObjectRef("apps/v1", "DaemonSet", "kube-system", "d")]
    assert installer.remove(refs) == []
    assert calls == [("delete", "DaemonSet.v1.apps", "d", "-n", "kube-system"),
                     ("delete", "ServiceAccount.v1.", "b", "a", "-n", "ns"),
                     ("delete", "Namespace.v1.", "ns")]


def test_existing_driver_needs_a_kubeconfig_and_only_it_takes_one(tmp_path):
    result = _minikf("up", "--driver", "existing", "-c", "minikf", home=tmp_path)
    assert result.returncode == 2 and "--driver existing needs --kubeconfig FILE" in result.stderr
    result = _minikf("up", "--kubeconfig", str(tmp_path / "k"), "-c", "minikf", home=tmp_path)
    assert result.returncode == 2 and "--kubeconfig and --context go with --driver existing" in result.stderr


@needs_kubectl
def test_existing_driver_preflight_names_a_cluster_that_does_not_answer(tmp_path):
    kubeconfig = _unreachable_kubeconfig(tmp_path)
    result = _minikf("up", "--driver", "existing", "--kubeconfig", str(kubeconfig), "-c", "gpu",
                     home=tmp_path / "h")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: preflight for minikf up --driver existing ({kubeconfig}) "
                                    f"failed, nothing was created")
    assert "  API server: no answer (" in result.stderr
    assert not (tmp_path / "h").exists()


# --- status ------------------------------------------------------------------------------------

def test_status_against_an_unreachable_kubeconfig_is_one_line(tmp_path):
    result = _minikf("status", "--kubeconfig", str(_unreachable_kubeconfig(tmp_path)), home=tmp_path)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the Kubernetes API server at https://127.0.0.1:")
    assert "connection refused" in lines[0]


def _deployment(name: str, namespace: str, available: int, replicas: int = 1) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas}, "status": {"availableReplicas": available}}


def test_status_reports_each_component(tmp_path):
    """Still on FakeApiServer: component health reads Deployments in fixed cluster-wide namespaces
    (kubeflow, cert-manager, istio-system); making them on the shared real cluster would change
    what every other test's discovery finds there (a ready training-operator turns the kubeflow
    flavor on for all)."""
    from minikf.kube.client import connect

    with FakeApiServer() as api:
        api.objects[("apps", "kubeflow", "deployments", "training-operator")] = _deployment(
            "training-operator", "kubeflow", 1)
        api.objects[("apps", "cert-manager", "deployments", "cert-manager")] = _deployment(
            "cert-manager", "cert-manager", 0)
        path = api.kubeconfig(tmp_path)
        cluster = connect(str(path))
        try:
            found = {h.component: h for h in health(cluster, comp.resolve(["training-operator", "katib"]))}
        finally:
            cluster.close()
        assert found["training-operator"].state == "ready"
        assert found["cert-manager"].state == "not ready" and "cert-manager/cert-manager 0/1" in found[
            "cert-manager"].detail
        assert found["katib"].state == "not installed"
        assert found["kubeflow-base"].state == "no readiness check"
        istiod = ("apps", "istio-system", "deployments", "istiod")
        api.objects[istiod] = _deployment("istiod", "istio-system", 1)
        result = _minikf("status", "--kubeconfig", str(path), "-c", "training-operator", home=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert any(line.split()[:2] == ["training-operator", "ready"] for line in lines)
        assert any(line.split()[:2] == ["istio", "ready"] for line in lines)  # what it needs is shown too
        del api.objects[istiod]
        result = _minikf("status", "--kubeconfig", str(path), "-c", "training-operator", home=tmp_path)
        assert result.returncode == 1 and "istio              not installed" in result.stdout
    assert result.stdout.startswith(f"cluster {api.url} (Kubernetes v1.31.0-fake")


def test_status_reads_a_daemonset_for_the_gpu_component(tmp_path):
    """Still on FakeApiServer: the device plugin's DaemonSet lives in kube-system, shared by every
    test on the real cluster, and it must be seen both not ready and ready."""
    from minikf.kube.client import connect

    with FakeApiServer() as api:
        key = ("apps", "kube-system", "daemonsets", "nvidia-device-plugin")
        api.objects[key] = {"apiVersion": "apps/v1", "kind": "DaemonSet",
                            "metadata": {"name": "nvidia-device-plugin", "namespace": "kube-system"},
                            "status": {"desiredNumberScheduled": 1, "numberAvailable": 0}}
        cluster = connect(str(api.kubeconfig(tmp_path)))
        try:
            (gpu,) = health(cluster, [comp.COMPONENTS["gpu"]])
            assert (gpu.state, gpu.detail) == ("not ready", "kube-system/nvidia-device-plugin 0/1")
            api.objects[key]["status"]["numberAvailable"] = 1
            (gpu,) = health(cluster, [comp.COMPONENTS["gpu"]])
            assert (gpu.state, gpu.detail) == ("ready", "1 daemonset(s) available")
        finally:
            cluster.close()


# --- the kind driver's calls -------------------------------------------------------------------

_FAKE_KIND = """#!/bin/sh
# Stand-in for kind (no kind binary or cluster can run here): records its argv, plays `get clusters`.
echo "$*" >> "$(dirname "$0")/calls.log"
case "$1 $2" in
  "get clusters") cat "$(dirname "$0")/clusters" 2>/dev/null || true ;;
  "create cluster") echo demo >> "$(dirname "$0")/clusters"
    while [ "$#" -gt 0 ]; do [ "$1" = --kubeconfig ] && echo "apiVersion: v1" > "$2"; shift; done ;;
  "delete cluster") : > "$(dirname "$0")/clusters" ;;
esac
"""


def test_kind_driver_creates_reuses_and_deletes(tmp_path, monkeypatch):
    """The driver's kind argv, with a recording stand-in for kind (it cannot run here) and preflight
    passed by the test (preflight has its own tests above)."""
    from minikf.appliance.kind import KindAppliance
    from minikf.appliance.state import ApplianceState

    monkeypatch.setenv("MINIKF_HOME", str(tmp_path / "home"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kind").write_text(_FAKE_KIND)
    (bin_dir / "kind").chmod(0o755)
    monkeypatch.setattr(KindAppliance, "preflight", lambda self: [])
    settings = kindconfig.KindSettings(name="demo", data_dir=tmp_path / "data")
    appliance = KindAppliance(settings, [], tools=Tools(path=f"{bin_dir}:/usr/bin:/bin"), say=lambda m: None)

    found = appliance.up()
    home = tmp_path / "home" / "appliance" / "demo"
    config = home / "kind-config.yaml"
    assert found == {"kubeconfig": str(home / "kubeconfig")}
    assert kindconfig.load(config.read_text()).name == "demo" and (tmp_path / "data").is_dir()
    assert (home / "kubeconfig").stat().st_mode & 0o777 == 0o600
    assert ApplianceState.load("demo").driver == "kind"
    appliance.up()  # a second up reuses the cluster
    calls = (bin_dir / "calls.log").read_text().splitlines()
    kubeconfig = home / "kubeconfig"
    assert calls == ["get clusters",
                     f"create cluster --name demo --config {config} --kubeconfig {kubeconfig} --wait 180s",
                     "get clusters", f"export kubeconfig --name demo --kubeconfig {kubeconfig}"]
    appliance.down()
    assert (bin_dir / "calls.log").read_text().splitlines()[-1] == "delete cluster --name demo"
    assert not (home / "state.json").exists() and (tmp_path / "data").is_dir()  # the data stays


@needs_kubectl
def test_a_local_mirror_is_built_in_place_of_upstream(tmp_path):
    """An air-gapped site's checkout: the upstream path under the mirror is what kustomize builds."""
    base = tmp_path / "mirror" / "common/kubeflow-namespace/base"
    base.mkdir(parents=True)
    (base / "kustomization.yaml").write_text("resources:\n- ns.yaml\n")
    (base / "ns.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kubeflow\n")
    mirrors = comp.Mirrors.from_args([f"kubeflow-manifests={tmp_path / 'mirror'}"], environ={})
    installer = Installer(Tools(), tmp_path / "kubeconfig", mirrors, tmp_path)
    (step,) = [s for s in comp.COMPONENTS["kubeflow-base"].steps if "namespace" in s.path]
    assert yaml.safe_load(installer.build(step))["metadata"]["name"] == "kubeflow"


def test_images_to_load_must_exist_locally(tmp_path):
    """The real docker CLI asked about an image no engine has (needs a running engine)."""
    tools = Tools()
    if not tools.which("docker") or not preflight.check_docker(tools)[0].ok:
        pytest.skip("no running Docker engine here")
    (check,) = preflight.check_images(tools, ["minikf/no-such-image:never"])
    assert not check.ok and check.detail == "not in the local engine" and "--load-image" in check.fix


# --- the tools seam ----------------------------------------------------------------------------

def test_tool_failures_and_timeouts_are_one_line():
    tools = Tools()
    with pytest.raises(MinikfError) as exc:
        tools.run("sh", "-c", "echo progress; echo 'the real reason' >&2; exit 3")
    expected = "`sh -c echo progress; echo 'the real reason' >&2; exit 3` failed (exit 3): the real reason"
    assert exc.value.message == expected
    with pytest.raises(MinikfError, match="`sleep 5` did not finish within"):
        tools.run("sleep", "5", timeout_s=0.5)
    assert not tools.run("false", check=False).ok
    with pytest.raises(MinikfError, match="kind not found on PATH: install kind v0.27.0"):
        Tools(path="/nonexistent").run("kind", "version")
    assert parse_version("kind v0.27.0 go1.23.6 linux/amd64") == (0, 27, 0)
    assert parse_version('GitVersion:"v1.20.2"') == (1, 20, 2) and parse_version("none") is None


def test_gpu_node_setup_commands_are_valid_bash():
    from minikf.appliance.kind import GPU_NODE_SETUP

    for command in GPU_NODE_SETUP:
        text = command.format(repo="https://mirror.example/libnvidia-container")
        assert subprocess.run(["bash", "-n", "-c", text]).returncode == 0, text
