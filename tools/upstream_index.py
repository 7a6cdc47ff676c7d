"""Write tests/data/upstream-index.json: what the pinned upstream releases contain that minikf relies
on, read from git snapshots of kubeflow/manifests and kubeflow/trainer.

    python tools/upstream_index.py --manifests GIT_DIR --trainer GIT_DIR [-o FILE]

GIT_DIR is a (bare) clone with tags, e.g. `git clone --bare https://github.com/kubeflow/manifests`.
The manifests tag is minikf.appliance.components.KUBEFLOW_VERSION; the Trainer tags are
minikf.kube.objects.TRAINER_VERSIONS. Each tag is exported with `git archive` into a temporary
directory and built with `kubectl kustomize` (offline: the paths used here have no remote bases).

The index is small and committed, so tests/appliance/test_upstream.py checks components.py,
the local overlays and objects.py against it without a network; regenerate it when a pin moves.
It holds only facts (paths, names, kinds, images, label selectors, API field names), never
upstream text.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "upstream-index.json"
WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet")
# In a CRD schema, subtrees below these keys are cut to their items' field names: core types the
# kubernetes client's models already check; what matters here is the Trainer API around them.
CORE_LISTS = {"volumes", "containers", "initContainers", "env", "volumeMounts", "tolerations",
              "imagePullSecrets", "schedulingGates", "ports", "envFrom"}
INSTALL_LINE = re.compile(r"^kustomize build (\S+?)/? \| kubectl apply (.*)-f -")


def export(git_dir: Path, tag: str, dest: Path) -> str:
    """Unpack `tag` of `git_dir` into `dest`; the commit it names."""
    commit = subprocess.run(["git", "--git-dir", str(git_dir), "rev-parse", f"{tag}^{{commit}}"],
                            check=True, capture_output=True, text=True).stdout.strip()
    archive = subprocess.run(["git", "--git-dir", str(git_dir), "archive", "--format=tar", commit],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return commit


def kustomize(path: Path) -> list[dict]:
    result = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"kubectl kustomize {path} failed: {result.stderr.strip().splitlines()[-1]}")
    return [d for d in yaml.safe_load_all(result.stdout) if isinstance(d, dict)]


def kustomize_dirs(tree: Path) -> list[str]:
    names = ("kustomization.yaml", "kustomization.yml", "Kustomization")
    return sorted(str(p.parent.relative_to(tree)) for n in names for p in tree.rglob(n))


def install_steps(readme: str) -> list[dict]:
    """The README's install commands (uncommented `kustomize build P | kubectl apply ...` lines)."""
    steps = []
    for line in readme.splitlines():
        match = INSTALL_LINE.match(line.strip())
        if match and match.group(1) not in [s["path"] for s in steps]:
            steps.append({"path": match.group(1), "server_side": "--server-side" in match.group(2)})
    return steps


def readme_versions(readme: str) -> dict[str, str]:
    """Component -> upstream revision from the README's versions table."""
    out = {}
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[1].startswith(("applications/", "apps/", "common/")):
            revision = re.match(r"\[([^\]]+)\]", cells[2])
            if revision:
                out[cells[0]] = revision.group(1)
    return out


def _pod_spec(obj: dict) -> dict:
    return ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}


def build_facts(objs: list[dict]) -> dict[str, Any]:
    """Workloads (kind, namespace, name, images), namespaces created, the namespace label selectors
    of webhooks and metacontroller watches, and the ConfigMap settings minikf depends on."""
    workloads, namespaces, selectors, settings = [], [], [], {}
    for obj in objs:
        kind, meta = obj.get("kind"), obj.get("metadata") or {}
        if kind in WORKLOADS:
            pod = _pod_spec(obj)
            workloads.append({"kind": kind, "namespace": meta.get("namespace", ""), "name": meta["name"],
                              "images": [c["image"] for c in pod.get("containers", [])]})
        elif kind == "Namespace":
            namespaces.append(meta["name"])
        elif kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            for hook in obj.get("webhooks") or []:
                labels = (hook.get("namespaceSelector") or {}).get("matchLabels")
                if labels:
                    selectors.append({"by": f"{kind}/{hook['name']}", "namespace_labels": labels})
        elif kind in ("DecoratorController", "CompositeController"):
            for watched in (obj.get("spec") or {}).get("resources") or []:
                labels = (watched.get("labelSelector") or {}).get("matchLabels")
                if watched.get("resource") == "namespaces" and labels:
                    selectors.append({"by": f"{kind}/{meta['name']}", "namespace_labels": labels})
        elif kind == "ConfigMap":
            for key in ("DEFAULTPIPELINERUNNERSERVICEACCOUNT",):
                if key in (obj.get("data") or {}):
                    settings[key] = obj["data"][key]
            spawner = (obj.get("data") or {}).get("spawner_ui_config.yaml")
            if spawner:
                form = (yaml.safe_load(spawner) or {}).get("spawnerFormDefaults") or {}
                settings["notebook_default_image"] = (form.get("image") or {}).get("value")
    workloads.sort(key=lambda w: (w["namespace"], w["kind"], w["name"]))
    return {"workloads": workloads, "namespaces": sorted(set(namespaces)),
            "namespace_selectors": selectors, "settings": settings}


def index_manifests(git_dir: Path, tag: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="minikf-upstream-") as tmp:
        tree = Path(tmp)
        commit = export(git_dir, tag, tree)
        readme = (tree / "README.md").read_text()
        steps = install_steps(readme)
        builds = {}
        for step in steps:
            print(f"  kustomize {step['path']}", file=sys.stderr)
            builds[step["path"]] = build_facts(kustomize(tree / step["path"]))
        return {"repository": "kubeflow/manifests", "tag": tag, "commit": commit,
                "kustomize_dirs": kustomize_dirs(tree), "install_steps": steps,
                "versions": readme_versions(readme), "builds": builds}


def skeleton(schema: dict, cut: bool = False) -> dict:
    """The field names of an OpenAPI v3 schema as nested dicts; a list's items under "[]"."""
    if schema.get("type") == "array":
        return {"[]": skeleton(schema.get("items") or {}, cut)}
    props = schema.get("properties") or {}
    if cut:
        return {name: {} for name in props}
    return {name: skeleton(sub, name in CORE_LISTS) for name, sub in sorted(props.items())}


def _patch_field(spec_fields: dict) -> str | None:
    for name in ("runtimePatches", "podTemplateOverrides", "podSpecOverrides"):
        if name in spec_fields:
            return name
    return None


def _without_remote(overlay: Path) -> Path:
    """The overlay minus its third-party resources (JobSet, fetched from the network)."""
    path = overlay / "kustomization.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["resources"] = [r for r in doc.get("resources", []) if "third-party" not in r]
    path.write_text(yaml.safe_dump(doc))
    return overlay


def index_trainer(git_dir: Path, tags: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"repository": "kubeflow/trainer", "versions": {}}
    for tag in tags:
        with tempfile.TemporaryDirectory(prefix="minikf-upstream-") as tmp:
            tree = Path(tmp)
            commit = export(git_dir, tag, tree)
            crd_file = tree / "manifests/base/crds/trainer.kubeflow.org_trainjobs.yaml"
            crd = yaml.safe_load(crd_file.read_text())
            version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
            spec = skeleton(version["schema"]["openAPIV3Schema"])["spec"]
            patch = _patch_field(spec)
            jobset = tree / "pkg/runtime/framework/plugins/jobset/jobset.go"
            manager_rule = None
            if patch == "runtimePatches" and re.search(r"IsDomainPrefixedPath\([^)]*Child\(\"manager\"\)",
                                                        jobset.read_text()):
                manager_rule = "domain-prefixed path"
            runtime = yaml.safe_load((tree / "manifests/base/runtimes/torch_distributed.yaml").read_text())
            jobs = {j["name"]: [c["name"] for c in j["template"]["spec"]["template"]["spec"]["containers"]]
                    for j in runtime["spec"]["template"]["spec"]["replicatedJobs"]}
            controller = build_facts(kustomize(_without_remote(tree / "manifests/overlays/manager")))

            out["versions"][tag] = {
                "commit": commit, "spec_fields": sorted(spec), "trainer_fields": sorted(spec["trainer"]),
                "patch_field": patch, "patch_schema": spec.get(patch) if patch else None,
                "manager_rule": manager_rule, "torch_distributed_jobs": jobs,
                "controller": [w for w in controller["workloads"] if w["kind"] == "Deployment"],
            }
    return out


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT))
    from minikf.appliance.components import KUBEFLOW_VERSION
    from minikf.kube.objects import TRAINER_VERSIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifests", type=Path, required=True, help="git dir of kubeflow/manifests")
    parser.add_argument("--trainer", type=Path, required=True, help="git dir of kubeflow/trainer")
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    args = parser.parse_args(argv)
    index = {"generated_by": "tools/upstream_index.py",
             "manifests": index_manifests(args.manifests, KUBEFLOW_VERSION),
             "trainer": index_trainer(args.trainer, [f"v{v}" for v in TRAINER_VERSIONS])}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
