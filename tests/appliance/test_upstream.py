"""minikf against the upstream releases it pins, offline: components.py, the local overlays and the
objects the kubernetes platform builds, checked against tests/data/upstream-index.json, which
tools/upstream_index.py wrote from kubeflow/manifests and kubeflow/trainer at the pinned tags
(`kubectl kustomize` of every path the release's README installs, the TrainJob CRD of each
Trainer release). When a pin moves, regenerate the index; these tests then say what no longer
matches. Each check also has a test that feeds it a known drift and sees it caught.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from minikf.appliance import components as comp
from minikf.kube import objects as res
from tests.paths import ROOT

INDEX = json.loads((ROOT / "tests" / "data" / "upstream-index.json").read_text())
MANIFESTS = INDEX["manifests"]
TRAINER = INDEX["trainer"]["versions"]
# A component's description names its version: the release's README table (row) says which it
# ships, and the image of this workload carries it (where its tag is a version, not a commit).
VERSIONED = {"istio": ("Istio", "istio-system", "istiod"),
             "pipelines": ("Kubeflow Pipelines", "kubeflow", "ml-pipeline"),
             "training-operator": ("Training Operator", "kubeflow", "training-operator"),
             "kserve": ("KServe", "kubeflow", "kserve-controller-manager"),
             "katib": ("Katib", "kubeflow", "katib-controller")}


# -- the checks (each returns its problems, one line each) -------------------------------------

def path_problems(components: list[comp.Component]) -> list[str]:
    """Every kubeflow-manifests path must exist at the pinned tag and be one the release's README
    installs, applied server-side exactly when the README does."""
    dirs = set(MANIFESTS["kustomize_dirs"])
    readme = {s["path"]: s["server_side"] for s in MANIFESTS["install_steps"]}
    out = []
    for c in components:
        for step in c.steps:
            if not isinstance(step, comp.Apply) or step.source != "kubeflow-manifests":
                continue
            if step.path not in dirs:
                out.append(f"{c.name}: {step.path} has no kustomization at {MANIFESTS['tag']}")
            elif step.path not in readme:
                out.append(f"{c.name}: {step.path} is not in {MANIFESTS['tag']}'s install steps")
            elif readme[step.path] != step.server_side:
                out.append(f"{c.name}: {step.path} server_side={step.server_side}, upstream applies it "
                           f"{'server-side' if readme[step.path] else 'client-side'}")
    return out


def local_objects(path: Path) -> list[dict]:
    """The objects of one of minikf's own overlays (files and directories under `resources`,
    `namespace` applied), read without kustomize: they are plain lists of files."""
    kustomization = yaml.safe_load((path / "kustomization.yaml").read_text())
    out = []
    for entry in kustomization.get("resources", []):
        target = path / entry
        docs = local_objects(target) if target.is_dir() else [
            d for d in yaml.safe_load_all(target.read_text()) if isinstance(d, dict)]
        for doc in docs:
            if kustomization.get("namespace") and doc["kind"] != "Namespace":
                doc.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
            out.append(doc)
    return out


def applied_workloads(component: comp.Component) -> list[dict]:
    """kind, namespace, name and images of every workload the component's applies create."""
    out = []
    for step in component.steps:
        if not isinstance(step, comp.Apply):
            continue
        if step.source == "kubeflow-manifests":
            out += MANIFESTS["builds"].get(step.path, {}).get("workloads", [])
        else:
            for obj in local_objects(comp.LOCAL_MANIFESTS / step.path):
                if obj["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
                    pod = obj["spec"]["template"]["spec"]
                    out.append({"kind": obj["kind"], "namespace": obj["metadata"].get("namespace", ""),
                                "name": obj["metadata"]["name"],
                                "images": [c["image"] for c in pod["containers"]]})
    return out


def wait_problems(components: list[comp.Component]) -> list[str]:
    """Every readiness wait must name workloads of its kind that the component itself applies."""
    out = []
    for c in components:
        workloads = applied_workloads(c)
        for wait in c.waits:
            here = {(w["kind"].lower(), w["name"]) for w in workloads if w["namespace"] == wait.namespace}
            if wait.deployments is None:
                if not any(kind == wait.kind for kind, _ in here):
                    out.append(f"{c.name}: waits for every {wait.kind} in {wait.namespace}, "
                               f"which it applies none of")
                continue
            for name in wait.deployments:
                if (wait.kind, name) in here:
                    continue
                other = [kind for kind, n in here if n == name]
                out.append(f"{c.name}: waits for {wait.kind}/{name} in {wait.namespace}, "
                           + (f"which is a {other[0]}" if other else "which it does not apply"))
    return out


def _image_version(image: str) -> str:
    return image.rsplit("@", 1)[0].rsplit(":", 1)[-1].lstrip("v")


def version_problems(components: list[comp.Component]) -> list[str]:
    """The version a description names must be the one the release ships (its README table) and,
    where the image tag is a version, the one the workload's image is tagged with."""
    out = []
    for c in components:
        if c.name not in VERSIONED:
            continue
        row, namespace, name = VERSIONED[c.name]
        said = re.search(r"\b(\d+\.\d+)(?:\.\d+)?\b", c.description)
        shipped = MANIFESTS["versions"].get(row, "").lstrip("v")
        images = [w["images"][0] for w in applied_workloads(c)  # the first container: not a sidecar
                  if (w["namespace"], w["name"]) == (namespace, name)]
        tagged = [i for i in images if re.fullmatch(r"\d+\.\d+\.\d+", _image_version(i))]
        if not said or not shipped or not images:
            out.append(f"{c.name}: no version in {c.description!r}, no {row!r} in the README table "
                       f"or no {namespace}/{name} applied")
        elif not shipped.startswith(said.group(1) + ".") or not all(
                _image_version(i).startswith(said.group(1) + ".") for i in tagged):
            out.append(f"{c.name}: says {said.group(1)}, {MANIFESTS['tag']} ships {shipped} "
                       f"({', '.join(images)})")
    return out


def domain_prefixed_path(value: str) -> bool:
    """The rule Trainer >= 2.2's webhook holds runtimePatches[].manager to (Kubernetes'
    IsDomainPrefixedPath): a DNS subdomain, '/', a non-empty path."""
    host, sep, path = value.partition("/")
    subdomain = re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", host)
    return bool(sep and path and len(host) <= 253 and subdomain
                and re.fullmatch(r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+", path))


def unknown_fields(obj, schema: dict, where: str = "") -> list[str]:
    """Fields of `obj` the schema skeleton (tools/upstream_index.py) has no place for."""
    if not schema:  # a scalar, or a core type cut short in the index
        return []
    if isinstance(obj, list):
        return [p for i, item in enumerate(obj) for p in unknown_fields(item, schema.get("[]", {}),
                                                                         f"{where}[{i}]")]
    if not isinstance(obj, dict):
        return []
    out = []
    for key, value in obj.items():
        if key not in schema:
            out.append(f"{where}.{key}".lstrip("."))
        else:
            out += unknown_fields(value, schema[key], f"{where}.{key}")
    return out


def trainjob_problems(tag: str, obj: dict) -> list[str]:
    """A TrainJob built for Trainer `tag` against that release's CRD, webhook rule and runtime."""
    facts = TRAINER[tag]
    spec = obj["spec"]
    out = [f"{tag}: spec.{k} is not in its TrainJob CRD" for k in spec if k not in facts["spec_fields"]]
    out += [f"{tag}: spec.trainer.{k} is not in its TrainJob CRD" for k in spec["trainer"]
            if k not in facts["trainer_fields"]]
    patch = facts["patch_field"]
    if patch in spec:
        out += [f"{tag}: spec.{patch}{p}" for p in unknown_fields(spec[patch], facts["patch_schema"])]
        for entry in spec[patch]:
            if facts["manager_rule"] and not domain_prefixed_path(entry.get("manager", "")):
                out.append(f"{tag}: manager {entry.get('manager')!r} is not a domain-prefixed path")
    jobs = facts["torch_distributed_jobs"]
    if res.TRAINER_NODE not in jobs or res.TRAINER_NODE not in jobs[res.TRAINER_NODE]:
        out.append(f"{tag}: torch-distributed has no job and container {res.TRAINER_NODE!r}: {jobs}")
    return out


def _spec() -> res.TrainSpec:
    return res.TrainSpec(name="fm-train", namespace="team", workers=2, argv=["python3", "-m", "x"],
                         data_configmaps=["fm-data-0"], labels={"minikf.dev/run": "r1"})


# -- components.py and the overlays ------------------------------------------------------------

def test_the_index_is_for_the_pinned_releases():
    assert MANIFESTS["tag"] == comp.KUBEFLOW_VERSION, "regenerate: python tools/upstream_index.py ..."
    assert sorted(TRAINER) == sorted(f"v{v}" for v in res.TRAINER_VERSIONS)


def test_every_kustomize_path_exists_and_is_installed_as_upstream_does():
    assert path_problems(list(comp.COMPONENTS.values())) == []


def test_a_path_from_another_release_layout_is_caught():
    old = comp.Component("pipelines", "KFP", (comp.Apply(
        "apps/pipeline/upstream/env/cert-manager/platform-agnostic-multi-user"),))
    istio = comp.Component("istio", "Istio", (comp.Apply("common/istio-1-24/istio-crds/base"),))
    kserve = comp.Component("kserve", "KServe", (comp.Apply("applications/kserve/kserve"),))
    problems = path_problems([old, istio, kserve])
    assert problems[0].startswith("pipelines: apps/pipeline/upstream/env/cert-manager/platform-agnostic"
                                  "-multi-user has no kustomization at v1.10.2")
    assert problems[1].startswith("istio: common/istio-1-24/istio-crds/base has no kustomization")
    assert problems[2] == ("kserve: applications/kserve/kserve server_side=False, upstream applies it "
                           "server-side")


def test_every_readiness_wait_names_workloads_its_component_applies():
    assert wait_problems(list(comp.COMPONENTS.values())) == []


def test_a_wait_on_the_wrong_kind_or_name_is_caught():
    gpu = comp.COMPONENTS["gpu"]
    as_deployment = comp.Component("gpu", gpu.description, (
        gpu.steps[0], comp.Wait("kube-system", ("nvidia-device-plugin",), 180)))
    pipelines = comp.COMPONENTS["pipelines"]
    misnamed = comp.Component("pipelines", pipelines.description, (
        pipelines.steps[0], comp.Wait("kubeflow", ("ml-pipeline-api",), 60)))
    assert wait_problems([as_deployment, misnamed]) == [
        "gpu: waits for deployment/nvidia-device-plugin in kube-system, which is a daemonset",
        "pipelines: waits for deployment/ml-pipeline-api in kubeflow, which it does not apply"]


def test_descriptions_name_the_versions_the_release_runs():
    assert version_problems(list(comp.COMPONENTS.values())) == []
    kserve = comp.COMPONENTS["kserve"]
    stale = comp.Component("kserve", "KServe 0.14 (InferenceService)", kserve.steps)
    (problem,) = version_problems([stale])
    assert problem.startswith("kserve: says 0.14, v1.10.2 ships 0.15.0 (") and ":v0.15.0" in problem


def test_the_minikf_namespace_has_what_kfp_and_katib_select_namespaces_by():
    objs = local_objects(comp.LOCAL_MANIFESTS / "base" / "minikf-namespace")
    (namespace,) = [o for o in objs if o["kind"] == "Namespace"]
    labels = namespace["metadata"]["labels"]
    wanted = {}
    for path in ("applications/pipeline/upstream/env/cert-manager/platform-agnostic-multi-user",
                 "applications/katib/upstream/installs/katib-with-kubeflow"):
        for selector in MANIFESTS["builds"][path]["namespace_selectors"]:
            if "katib" in path and "mutator.pod" not in selector["by"]:
                continue  # the experiment webhooks select no namespaces; the pod mutator does
            wanted.update(selector["namespace_labels"])
    assert {"pipelines.kubeflow.org/enabled", "katib.kubeflow.org/metrics-collector-injection"} <= set(wanted)
    assert {k: labels.get(k) for k in wanted} == wanted
    # multi-user KFP runs pipeline pods as this service account of the run's namespace
    kfp = "applications/pipeline/upstream/env/cert-manager/platform-agnostic-multi-user"
    runner = MANIFESTS["builds"][kfp]["settings"]["DEFAULTPIPELINERUNNERSERVICEACCOUNT"]
    accounts = {o["metadata"]["name"] for o in objs if o["kind"] == "ServiceAccount"}
    assert runner in accounts
    (binding,) = [o for o in objs if o["kind"] == "RoleBinding"]
    assert runner in {s["name"] for s in binding["subjects"]}
    assert binding["roleRef"]["name"] == "kubeflow-edit"
    owner = namespace["metadata"]["annotations"]["owner"]
    assert owner == f"system:serviceaccount:minikf:{binding['subjects'][0]['name']}"


def test_the_notebook_image_is_the_pinned_web_apps_default(monkeypatch):
    import importlib

    import minikf.notebooks.kubernetes as nb

    monkeypatch.delenv("MINIKF_NOTEBOOK_IMAGE", raising=False)
    default = importlib.reload(nb).NOTEBOOK_IMAGE
    web_app = "applications/jupyter/jupyter-web-app/upstream/overlays/istio"
    assert default == MANIFESTS["builds"][web_app]["settings"]["notebook_default_image"]


# -- the TrainJob for each Trainer release -----------------------------------------------------

@pytest.mark.parametrize("tag", sorted(TRAINER))
def test_trainjob_matches_each_trainer_release(tag):
    version = res.parse_trainer_version(tag)
    assert res.trainer_patch_field(version) == TRAINER[tag]["patch_field"]
    obj = res.trainjob(_spec(), trainer_version=version)
    assert TRAINER[tag]["patch_field"] in obj["spec"]  # the data volume is not dropped
    assert trainjob_problems(tag, obj) == []


def test_trainjob_drift_is_caught():
    newest = res.trainjob(_spec(), trainer_version=(2, 3))
    # the runtimePatches shape on a Trainer 2.1 CRD: the API server would drop it silently
    assert "v2.1.0: spec.runtimePatches is not in its TrainJob CRD" in trainjob_problems("v2.1.0", newest)
    bare = json.loads(json.dumps(newest))
    bare["spec"]["runtimePatches"][0]["manager"] = "minikf"
    assert trainjob_problems("v2.2.0", bare) == ["v2.2.0: manager 'minikf' is not a domain-prefixed path"]
    misspelt = json.loads(json.dumps(newest))
    misspelt["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJob"] = []
    assert trainjob_problems("v2.3.0", misspelt) == [
        "v2.3.0: spec.runtimePatches[0].trainingRuntimeSpec.template.spec.replicatedJob"]
    with pytest.raises(res.InvalidResource, match="no TrainJob API"):
        res.trainjob(_spec(), trainer_version=(1, 9))


def test_domain_prefixed_path_rule():
    assert domain_prefixed_path(res.TRAINER_PATCH_MANAGER)
    assert domain_prefixed_path("kueue.x-k8s.io/manager")
    for bad in ("minikf", "minikf/", "/manager", "Minikf.dev/manager", "-a.dev/x", "a.dev/x y"):
        assert not domain_prefixed_path(bad), bad


def test_the_platform_reads_the_trainer_version_where_upstream_runs_its_controller():
    from minikf.platforms.kubernetes.platform import COMPONENT_DEPLOYMENTS, COMPONENT_NAMESPACES

    for tag, facts in TRAINER.items():
        (controller,) = facts["controller"]
        assert COMPONENT_DEPLOYMENTS.get(controller["name"]) == "Kubeflow Trainer"
        assert controller["namespace"] in COMPONENT_NAMESPACES
        (image,) = controller["images"]
        assert res.parse_trainer_version(image.rsplit(":", 1)[-1]) == res.parse_trainer_version(tag)
