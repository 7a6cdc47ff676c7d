"""The Kubernetes objects the kubernetes platform creates, built as plain dicts and checked
against the upstream SDKs' own model classes (kubeflow-training's PyTorchJob, kubeflow's
Trainer TrainJob and Katib Experiment, kserve's V1beta1InferenceService, the kubernetes client's
core models) by a strict round trip: a field the SDK does not know is an error, not dropped.

Plain dicts go to the API server through CustomObjectsApi / CoreV1Api; the SDK classes are the
check, so a typo in a field name fails here rather than on a vendor's cluster.
"""

from __future__ import annotations

import datetime
import io
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minikf.kube.client import Crd, Permission

RUNTIME_IMAGE = os.environ.get("MINIKF_RUNTIME_IMAGE", "minikf/runtime:latest")
MODEL_PORT = 8080
# The API server refuses a ConfigMap whose data adds up to over 1 MiB (binaryData counted decoded);
# keep a margin. The journey's model (~0.83 MB) and the bundled sample (~0.38 MB) fit.
CONFIGMAP_LIMIT = 1_000_000
# Images loaded into kind (`kind load docker-image`) are not in a registry: never force a pull.
PULL_POLICY = "IfNotPresent"
# What the restricted Pod Security Standard asks of a container that may still run as root (the
# runtime image does): no privilege escalation, no capabilities, the runtime's seccomp profile.
def security_context() -> dict:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}

PYTORCHJOB = Crd("kubeflow.org", "v1", "pytorchjobs", "Kubeflow Training Operator")
TRAINJOB = Crd("trainer.kubeflow.org", "v1alpha1", "trainjobs", "Kubeflow Trainer")
INFERENCESERVICE = Crd("serving.kserve.io", "v1beta1", "inferenceservices", "KServe")
EXPERIMENT = Crd("kubeflow.org", "v1beta1", "experiments", "Katib")
NOTEBOOK = Crd("kubeflow.org", "v1", "notebooks", "Kubeflow Notebooks")
# The Kubeflow Trainer releases whose TrainJob minikf builds (tools/upstream_index.py indexes each).
TRAINER_VERSIONS = ("2.0.0", "2.1.0", "2.2.0", "2.3.0")
# Trainer >= 2.2 keys runtimePatches by manager, which its webhook wants as a domain-prefixed path.
TRAINER_PATCH_MANAGER = "minikf.dev/manager"
TRAINER_NODE = "node"  # the replicated job and container of the torch-distributed runtime

COMMON_PERMISSIONS = [
    Permission("create", "configmaps"), Permission("delete", "configmaps"),
    Permission("list", "pods"), Permission("get", "pods", subresource="log"),
]
TRAIN_PERMISSIONS = {
    "pytorchjobs": [Permission("create", "pytorchjobs", "kubeflow.org"),
                    Permission("get", "pytorchjobs", "kubeflow.org"),
                    Permission("delete", "pytorchjobs", "kubeflow.org")],
    "trainjobs": [Permission("create", "trainjobs", "trainer.kubeflow.org"),
                  Permission("get", "trainjobs", "trainer.kubeflow.org"),
                  Permission("delete", "trainjobs", "trainer.kubeflow.org")],
}
SERVE_PERMISSIONS = [
    Permission("create", "inferenceservices", "serving.kserve.io"),
    Permission("get", "inferenceservices", "serving.kserve.io"),
    Permission("delete", "inferenceservices", "serving.kserve.io"),
    Permission("create", "secrets"), Permission("delete", "secrets"),
    Permission("create", "pods", subresource="portforward"),
]


class InvalidResource(ValueError):
    """A built object that the upstream SDK model does not accept as-is."""


def dns_name(*parts: str, limit: int = 52) -> str:
    """A DNS-1035 label from parts (lower case, '-' separated, starts with a letter)."""
    text = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    if not text or not text[0].isalpha():
        text = f"m-{text}"
    return text[:limit].rstrip("-")


# -- strict round trip through the SDK models -------------------------------------------------

_PRIMITIVES = {"str": str, "int": int, "float": (int, float), "bool": bool, "object": object}


def _model_modules() -> list:
    import kserve.models
    import kubeflow.training.models
    from kubernetes.client import models as core

    return [kserve.models, kubeflow.training.models, core]


def _find_class(name: str):
    for module in _model_modules():
        if hasattr(module, name):
            return getattr(module, name)
    raise InvalidResource(f"no SDK model class {name}")


def _to_model(data: Any, type_name: str, where: str) -> Any:
    """Deserialize `data` into the openapi-generated `type_name`, refusing unknown keys."""
    if data is None:
        return None
    if type_name.startswith("list["):
        if not isinstance(data, list):
            raise InvalidResource(f"{where}: expected a list, got {type(data).__name__}")
        return [_to_model(v, type_name[5:-1], f"{where}[{i}]") for i, v in enumerate(data)]
    if type_name.startswith("dict("):
        if not isinstance(data, dict):
            raise InvalidResource(f"{where}: expected a mapping, got {type(data).__name__}")
        inner = type_name[5:-1].split(", ", 1)[1]
        return {k: _to_model(v, inner, f"{where}.{k}") for k, v in data.items()}
    if type_name in _PRIMITIVES:
        if not isinstance(data, _PRIMITIVES[type_name]) or (type_name == "int" and isinstance(data, bool)):
            raise InvalidResource(f"{where}: expected {type_name}, got {type(data).__name__}")
        return data
    if type_name in ("datetime", "date"):
        return data if isinstance(data, str | datetime.date) else str(data)
    cls = _find_class(type_name)
    if not isinstance(data, dict):
        raise InvalidResource(f"{where}: expected a {type_name} mapping, got {type(data).__name__}")
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    unknown = sorted(set(data) - set(by_json))
    if unknown:
        raise InvalidResource(f"{where}: {type_name} has no field(s) {', '.join(unknown)}")
    kwargs = {by_json[k]: _to_model(v, cls.openapi_types[by_json[k]], f"{where}.{k}")
              for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ValueError as exc:  # the generated setters check required fields and enums
        raise InvalidResource(f"{where}: {exc}") from None


def check_openapi(obj: dict, type_name: str) -> Any:
    """The SDK model for `obj`; InvalidResource if a field is unknown or the round trip differs."""
    from kubernetes.client import ApiClient

    model = _to_model(obj, type_name, type_name)
    back = ApiClient().sanitize_for_serialization(model)
    if back != obj:
        raise InvalidResource(f"{type_name}: round trip through the SDK model changed the object")
    return model


def check_pydantic(obj: dict, cls) -> Any:
    """The same check for the pydantic SDKs (kubeflow's Trainer and Katib APIs)."""
    model = cls.from_dict(obj)
    back = model.to_dict()
    if back != obj:
        raise InvalidResource(f"{cls.__name__}: fields the SDK model does not keep: {_diff(obj, back)}")
    return model


def _diff(a: Any, b: Any, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a:
            if key not in b:
                return f"{where}.{key}".lstrip(".")
            found = _diff(a[key], b[key], f"{where}.{key}")
            if found:
                return found
        return ""
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = _diff(x, y, f"{where}[{i}]")
            if found:
                return found
        return "" if len(a) == len(b) else where
    return "" if a == b else where.lstrip(".")


# -- training ---------------------------------------------------------------------------------

@dataclass
class TrainSpec:
    """One distributed training job: N workers running `argv` in the runtime image."""

    name: str
    namespace: str
    workers: int
    argv: list[str]  # the worker's command (python -m minikf.kube.job_entry ...)
    image: str = RUNTIME_IMAGE
    env: dict[str, str] = field(default_factory=dict)
    cpu: str = "1"
    memory: str = "2Gi"
    gpus: int = 0
    data_configmaps: list[str] = field(default_factory=list)  # projected at DATA_MOUNT if the data travels
    labels: dict[str, str] = field(default_factory=dict)


DATA_MOUNT = "/mnt/minikf-data"


def _container(name: str, spec: TrainSpec, command: list[str]) -> dict:
    limits = {"cpu": spec.cpu, "memory": spec.memory}
    if spec.gpus:
        limits["nvidia.com/gpu"] = str(spec.gpus)
    container: dict[str, Any] = {
        "name": name, "image": spec.image, "imagePullPolicy": PULL_POLICY, "command": command,
        "env": [{"name": k, "value": v} for k, v in sorted(spec.env.items())],
        "resources": {"limits": limits, "requests": {"cpu": spec.cpu, "memory": spec.memory}},
        "securityContext": security_context(),
    }
    if spec.data_configmaps:
        container["volumeMounts"] = [{"name": "data", "mountPath": DATA_MOUNT, "readOnly": True}]
    return container


def _pod_template(spec: TrainSpec) -> dict:
    pod: dict[str, Any] = {"containers": [_container("pytorch", spec, spec.argv)],
                           "restartPolicy": "Never"}
    if spec.data_configmaps:
        pod["volumes"] = [projected_volume("data", spec.data_configmaps)]
    return {"metadata": {"labels": dict(spec.labels)}, "spec": pod}


def pytorchjob(spec: TrainSpec) -> dict:
    """A Training Operator PyTorchJob: one Master and workers-1 Workers (the operator sets
    MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK: the contract in minikf/workload/contract.py)."""
    replicas: dict[str, Any] = {"Master": {"replicas": 1, "restartPolicy": "Never",
                                           "template": _pod_template(spec)}}
    if spec.workers > 1:
        replicas["Worker"] = {"replicas": spec.workers - 1, "restartPolicy": "Never",
                              "template": _pod_template(spec)}
    obj = {
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": dict(spec.labels)},
        "spec": {"pytorchReplicaSpecs": replicas,
                 "runPolicy": {"backoffLimit": 0, "cleanPodPolicy": "None"}},
    }
    check_openapi(obj, "KubeflowOrgV1PyTorchJob")
    return obj


def always_pulled(image: str) -> bool:
    """Whether Kubernetes defaults `image`'s imagePullPolicy to Always (tag latest or no tag, no
    digest): the case for TrainJobs, whose trainer has no pull policy field."""
    if "@" in image:
        return False
    name = image.rsplit("/", 1)[-1]
    return ":" not in name or name.endswith(":latest")


def parse_trainer_version(tag: str | None) -> tuple[int, int] | None:
    """(major, minor) from a Trainer controller image tag such as `v2.1.0`; None if it is not one."""
    match = re.match(r"^v?(\d+)\.(\d+)", tag or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def trainer_patch_field(version: tuple[int, int] | None) -> str:
    """The TrainJob field that adds volumes to the runtime's pods in this Trainer release (None:
    unknown, taken as the newest). Each release renamed it, and an API server drops a field its
    CRD does not have without a word, so the wrong one would lose the data volume silently."""
    if version is None or version >= (2, 2):
        return "runtimePatches"
    if version >= (2, 1):
        return "podTemplateOverrides"
    if version >= (2, 0):
        return "podSpecOverrides"
    raise InvalidResource(f"Kubeflow Trainer {version[0]}.{version[1]} has no TrainJob API "
                          f"(it came with Trainer 2.0); this cluster's training needs a PyTorchJob")


def _data_patch(spec: TrainSpec, field_name: str) -> list[dict]:
    """The data volume for the runtime's `node` pods, in the shape of `field_name`."""
    volume = projected_volume("data", spec.data_configmaps)
    mount = {"name": "data", "mountPath": DATA_MOUNT, "readOnly": True}
    check_openapi(volume, "V1Volume")
    check_openapi(mount, "V1VolumeMount")
    pod = {"volumes": [volume], "containers": [{"name": TRAINER_NODE, "volumeMounts": [mount]}]}
    target = [{"name": TRAINER_NODE}]
    if field_name == "podSpecOverrides":
        return [{"targetJobs": target, **pod}]
    if field_name == "podTemplateOverrides":
        return [{"targetJobs": target, "spec": pod}]
    return [{"manager": TRAINER_PATCH_MANAGER, "trainingRuntimeSpec": {"template": {"spec": {
        "replicatedJobs": [{"name": TRAINER_NODE, "template": {"spec": {"template": {"spec": pod}}}}]}}}}]


def trainjob(spec: TrainSpec, runtime: str = "torch-distributed",
             trainer_version: tuple[int, int] | None = None) -> dict:
    """A Kubeflow Trainer TrainJob on a ClusterTrainingRuntime: one process per node, the worker
    run directly (no torchrun); job_entry maps the runtime's PET_NNODES/PET_NODE_RANK/
    PET_MASTER_ADDR/PET_MASTER_PORT onto the same WORLD_SIZE/RANK/MASTER_* contract.
    `trainer_version` picks the field that carries the data volume (see trainer_patch_field)."""
    trainer: dict[str, Any] = {
        "image": spec.image, "numNodes": spec.workers, "numProcPerNode": 1, "command": list(spec.argv),
        "env": [{"name": k, "value": v} for k, v in sorted(spec.env.items())],
        "resourcesPerNode": {"limits": {"cpu": spec.cpu, "memory": spec.memory,
                                        **({"nvidia.com/gpu": str(spec.gpus)} if spec.gpus else {})}},
    }
    obj = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": dict(spec.labels)},
        "spec": {"runtimeRef": {"name": runtime}, "trainer": trainer},
    }
    field_name = trainer_patch_field(trainer_version)
    if spec.data_configmaps:
        obj["spec"][field_name] = _data_patch(spec, field_name)
    if field_name == "runtimePatches":  # the installed SDK models the newest API only
        from kubeflow_trainer_api import models

        check_pydantic(obj, models.TrainerV1alpha1TrainJob)
    return obj


def job_finished(obj: dict) -> tuple[bool, bool, str]:
    """(finished, succeeded, message) from a PyTorchJob's or TrainJob's status conditions."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") in ("Succeeded", "Complete"):
            return True, True, cond.get("message", "")
        if cond.get("type") == "Failed":
            return True, False, cond.get("message") or cond.get("reason") or "failed"
    return False, False, ""


def job_pods_selector(kind: str, name: str) -> str:
    """The label selector of every pod of a PyTorchJob or TrainJob."""
    if kind == "PyTorchJob":
        return f"training.kubeflow.org/job-name={name}"
    return f"jobset.sigs.k8s.io/jobset-name={name}"


def rank0_selector(kind: str, name: str) -> str:
    """The label selector of the pod that runs rank 0 (the one that writes the model)."""
    if kind == "PyTorchJob":
        return f"training.kubeflow.org/job-name={name},training.kubeflow.org/replica-type=master"
    return f"jobset.sigs.k8s.io/jobset-name={name},batch.kubernetes.io/job-completion-index=0"


# -- data and model as ConfigMaps --------------------------------------------------------------

def files_configmaps(name: str, namespace: str, directory: Path, labels: dict | None = None) -> list[dict]:
    """ConfigMaps holding every file of `directory` as binaryData (small data, a model), as few
    as fit under the 1 MiB limit each; a projected volume puts them back in one directory."""
    import base64

    files = sorted(p for p in Path(directory).iterdir() if p.is_file())
    groups: list[list[Path]] = []
    for path in files:
        size = path.stat().st_size
        if size > CONFIGMAP_LIMIT:
            raise InvalidResource(f"{path} is {size} bytes; a ConfigMap carries at most {CONFIGMAP_LIMIT} "
                                  f"(give the job http(s) mirrors to download from)")
        if not groups or sum(p.stat().st_size for p in groups[-1]) + size > CONFIGMAP_LIMIT:
            groups.append([])
        groups[-1].append(path)
    objs = []
    for i, group in enumerate(groups):
        obj = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": f"{name}-{i}", "namespace": namespace, "labels": dict(labels or {})},
               "binaryData": {p.name: base64.b64encode(p.read_bytes()).decode() for p in group}}
        check_openapi(obj, "V1ConfigMap")
        objs.append(obj)
    return objs


def projected_volume(name: str, configmaps: list[str]) -> dict:
    """One directory made of several ConfigMaps."""
    return {"name": name, "projected": {"sources": [{"configMap": {"name": c}} for c in configmaps]}}


def token_secret(name: str, namespace: str, token: str, labels: dict | None = None) -> dict:
    """The serving token as a Secret, read by the server from MINIKF_SERVE_TOKEN."""
    obj = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
           "stringData": {"token": token}}
    check_openapi(obj, "V1Secret")
    return obj


# -- serving ----------------------------------------------------------------------------------

@dataclass
class ServeSpec:
    name: str
    namespace: str
    model_configmaps: list[str]
    token_secret: str
    image: str = RUNTIME_IMAGE
    cpu: str = "1"
    memory: str = "1Gi"
    labels: dict[str, str] = field(default_factory=dict)


MODEL_MOUNT = "/mnt/models"


def inference_service(spec: ServeSpec) -> dict:
    """A KServe InferenceService with minikf's ModelServer as a custom predictor container.

    RawDeployment mode: no Knative or Istio needed (the light install); the model comes from a
    ConfigMap, the token from a Secret, and every request needs the token as on local.
    """
    container = {
        "name": "kserve-container", "image": spec.image, "imagePullPolicy": PULL_POLICY,
        "command": ["python3", "-m", "minikf.workload.server", "--model-dir", MODEL_MOUNT,
                    "--port", str(MODEL_PORT), "--host", "0.0.0.0"],  # inside the pod only
        "env": [{"name": "MINIKF_SERVE_TOKEN",
                 "valueFrom": {"secretKeyRef": {"name": spec.token_secret, "key": "token"}}}],
        "ports": [{"containerPort": MODEL_PORT, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": MODEL_PORT}, "periodSeconds": 2},
        "resources": {"limits": {"cpu": spec.cpu, "memory": spec.memory},
                      "requests": {"cpu": spec.cpu, "memory": spec.memory}},
        "volumeMounts": [{"name": "model", "mountPath": MODEL_MOUNT, "readOnly": True}],
        "securityContext": security_context(),
    }
    obj = {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": dict(spec.labels),
                     "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"}},
        "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 1, "containers": [container],
                               "volumes": [projected_volume("model", spec.model_configmaps)]}},
    }
    check_openapi(obj, "V1beta1InferenceService")
    return obj


def service_ready(obj: dict) -> tuple[bool, str]:
    """(ready, why not) from an InferenceService's status."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            if cond.get("status") == "True":
                return True, ""
            return False, cond.get("message") or cond.get("reason") or "not ready"
    return False, "no Ready condition yet"


def predictor_selector(name: str) -> str:
    return f"serving.kserve.io/inferenceservice={name}"


# -- model transport through the rank-0 log -----------------------------------------------------

MODEL_BEGIN = "----- minikf model archive begin -----"
MODEL_END = "----- minikf model archive end -----"


def pack_dir(directory: Path) -> str:
    """A tar.gz of `directory`, base64 in 76-column lines, between the markers."""
    import base64
    import textwrap

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(directory, arcname=".")
    body = "\n".join(textwrap.wrap(base64.b64encode(buffer.getvalue()).decode(), 76))
    return f"{MODEL_BEGIN}\n{body}\n{MODEL_END}\n"


def unpack_from_log(text: str, dest: Path) -> Path:
    """Extract the archive that `pack_dir` printed into a log; ValueError if there is none."""
    import base64

    start, end = text.rfind(MODEL_BEGIN), text.rfind(MODEL_END)
    if start < 0 or end < start:
        raise ValueError("the rank-0 log holds no model archive (did training finish?)")
    payload = "".join(text[start + len(MODEL_BEGIN):end].split())
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(payload)), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")  # refuses absolute paths and links out of dest
    return dest


def without_archive(text: str) -> str:
    """The log with the archive replaced by one line, so results bundles stay small."""
    start, end = text.rfind(MODEL_BEGIN), text.rfind(MODEL_END)
    if start < 0 or end < start:
        return text
    size = len("".join(text[start + len(MODEL_BEGIN):end].split()))
    return f"{text[:start]}[minikf model archive: {size} base64 characters]{text[end + len(MODEL_END):]}"
