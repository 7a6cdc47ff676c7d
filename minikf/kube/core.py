"""The objects of the kubernetes platform's `core` flavor: plain Kubernetes, no Kubeflow.

Training is an Indexed Job (one pod per rank, `completionMode: Indexed`) plus a headless Service
for the job's pods and a Service that routes the rendezvous port to rank 0. Serving is a
Deployment + Service running minikf's server image, its token from a Secret.

The env contract is the one every platform writes (MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK):
RANK comes from the Job's completion-index annotation through the downward API; MASTER_ADDR is the
rank-0 Service's ClusterIP, so the job needs no cluster DNS (many small clusters have none). Rank 0
itself rendezvouses on its own pod IP (`MINIKF_POD_IP`, see job_entry): a pod reaching itself
through a Service needs hairpin mode on the node's bridge, which not every CNI sets.
Kubernetes 1.24 does not label pods with their completion index, so the platform labels the
index-0 pod (`RANK_LABEL`) once it exists; that is what the rank-0 Service selects.
"""

from __future__ import annotations

from typing import Any

from minikf.kube.client import Permission
from minikf.kube.objects import (
    DATA_MOUNT,
    MODEL_MOUNT,
    MODEL_PORT,
    PULL_POLICY,
    TrainSpec,
    check_openapi,
    projected_volume,
    security_context,
)

SERVER_IMAGE = "minikf/server:latest"
MASTER_PORT = 29500
JOB_NAME_LABEL = "job-name"  # set on a Job's pods by the Job controller
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
RANK_LABEL = "minikf.io/rank"  # set by the platform on the index-0 pod
APP_LABEL = "minikf.io/serve"

TRAIN_PERMISSIONS = [
    Permission("create", "jobs", "batch"), Permission("get", "jobs", "batch"),
    Permission("delete", "jobs", "batch"), Permission("create", "services"),
    Permission("get", "services"), Permission("delete", "services"), Permission("patch", "pods"),
]
SERVE_PERMISSIONS = [
    Permission("create", "deployments", "apps"), Permission("get", "deployments", "apps"),
    Permission("delete", "deployments", "apps"), Permission("create", "services"),
    Permission("delete", "services"), Permission("create", "secrets"), Permission("delete", "secrets"),
    Permission("create", "pods", subresource="portforward"),
]


def _meta(name: str, namespace: str, labels: dict) -> dict:
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def _env(pairs: dict[str, str]) -> list[dict]:
    return [{"name": k, "value": v} for k, v in sorted(pairs.items())]


def _field(name: str, path: str) -> dict:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def rank0_service_name(job: str) -> str:
    return f"{job}-rank0"


def rank0_service(job: str, namespace: str, labels: dict) -> dict:
    """The Service whose ClusterIP is every rank's MASTER_ADDR: it selects the index-0 pod only."""
    meta = _meta(rank0_service_name(job), namespace, labels)
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": meta,
           "spec": {"selector": {JOB_NAME_LABEL: job, RANK_LABEL: "0"},
                    "publishNotReadyAddresses": True,  # the store is up before any probe could say so
                    "ports": [{"name": "rendezvous", "port": MASTER_PORT, "targetPort": MASTER_PORT}]}}
    check_openapi(obj, "V1Service")
    return obj


def headless_service(job: str, namespace: str, labels: dict) -> dict:
    """The job's pods by name: `<job>-<index>.<service>` where the cluster runs DNS, and one
    Endpoints object listing every rank's pod IP (what `minikf` shows when a job hangs)."""
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": _meta(job, namespace, labels),
           "spec": {"clusterIP": "None", "selector": {JOB_NAME_LABEL: job},
                    "publishNotReadyAddresses": True,
                    "ports": [{"name": "rendezvous", "port": MASTER_PORT, "targetPort": MASTER_PORT}]}}
    check_openapi(obj, "V1Service")
    return obj


def indexed_job(spec: TrainSpec, master_addr: str, subdomain: str, deadline_s: int) -> dict:
    """N pods, one per rank, that all succeed or the Job fails (backoffLimit 0: a dead rank is
    not retried alone, which would hang the others at the rendezvous)."""
    limits = {"cpu": spec.cpu, "memory": spec.memory}
    if spec.gpus:
        limits["nvidia.com/gpu"] = str(spec.gpus)
    env = _env({**spec.env, "MASTER_ADDR": master_addr, "MASTER_PORT": str(MASTER_PORT),
                "WORLD_SIZE": str(spec.workers)})
    env += [_field("RANK", f"metadata.annotations['{INDEX_ANNOTATION}']"),
            _field("MINIKF_POD_IP", "status.podIP")]
    container: dict[str, Any] = {
        "name": "worker", "image": spec.image, "imagePullPolicy": PULL_POLICY,
        "command": list(spec.argv), "env": env,
        "ports": [{"containerPort": MASTER_PORT, "name": "rendezvous"}],
        "resources": {"limits": limits, "requests": {"cpu": spec.cpu, "memory": spec.memory}},
        "securityContext": security_context(),
    }
    pod: dict[str, Any] = {"containers": [container], "restartPolicy": "Never", "subdomain": subdomain,
                           "automountServiceAccountToken": False}
    if spec.data_configmaps:
        container["volumeMounts"] = [{"name": "data", "mountPath": DATA_MOUNT, "readOnly": True}]
        pod["volumes"] = [projected_volume("data", spec.data_configmaps)]
    obj = {"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta(spec.name, spec.namespace, spec.labels),
           "spec": {"completions": spec.workers, "parallelism": spec.workers,
                    "completionMode": "Indexed", "backoffLimit": 0,
                    "activeDeadlineSeconds": max(1, int(deadline_s)),
                    "template": {"metadata": {"labels": dict(spec.labels)}, "spec": pod}}}
    check_openapi(obj, "V1Job")
    return obj


def job_state(job: dict) -> tuple[bool, bool, str]:
    """(finished, succeeded, message) from a batch/v1 Job's conditions."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return True, True, cond.get("message", "")
        if cond.get("type") == "Failed":
            reason, message = cond.get("reason") or "", cond.get("message") or ""
            return True, False, ": ".join(p for p in (reason, message) if p) or "failed"
    return False, False, ""


def deployment(name: str, namespace: str, model_configmaps: list[str], token_secret: str,
               image: str = SERVER_IMAGE, labels: dict | None = None, cpu: str = "1",
               memory: str = "1Gi") -> dict:
    """One replica of minikf's model server: the model from ConfigMaps, the token from a Secret,
    ready when its port takes connections (every path, health too, needs the token, which a
    kubelet probe cannot send; the platform then checks /v2/health/ready through the tunnel)."""
    labels = dict(labels or {})
    selector = {APP_LABEL: name}
    container = {
        "name": "server", "image": image, "imagePullPolicy": PULL_POLICY,
        "command": ["python3", "-m", "minikf.workload.server", "--model-dir", MODEL_MOUNT,
                    "--port", str(MODEL_PORT), "--host", "0.0.0.0"],  # inside the pod only
        "env": [{"name": "MINIKF_SERVE_TOKEN",
                 "valueFrom": {"secretKeyRef": {"name": token_secret, "key": "token"}}}],
        "ports": [{"containerPort": MODEL_PORT, "name": "http"}],
        "readinessProbe": {"tcpSocket": {"port": MODEL_PORT}, "periodSeconds": 1},
        "resources": {"limits": {"cpu": cpu, "memory": memory}, "requests": {"cpu": cpu, "memory": memory}},
        "volumeMounts": [{"name": "model", "mountPath": MODEL_MOUNT, "readOnly": True}],
        "securityContext": security_context(),
    }
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, namespace, labels),
           "spec": {"replicas": 1, "selector": {"matchLabels": selector},
                    "template": {"metadata": {"labels": {**labels, **selector}},
                                 "spec": {"containers": [container], "automountServiceAccountToken": False,
                                          "volumes": [projected_volume("model", model_configmaps)]}}}}
    check_openapi(obj, "V1Deployment")
    return obj


def model_service(name: str, namespace: str, labels: dict | None = None) -> dict:
    """The served model inside the cluster: `http://<name>.<namespace>:8080` for other pods."""
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, namespace, labels or {}),
           "spec": {"selector": {APP_LABEL: name},
                    "ports": [{"name": "http", "port": MODEL_PORT, "targetPort": MODEL_PORT}]}}
    check_openapi(obj, "V1Service")
    return obj


def deployment_ready(obj: dict) -> tuple[bool, str]:
    """(ready, why not) from a Deployment's status."""
    status = obj.get("status") or {}
    if (status.get("readyReplicas") or 0) >= 1:
        return True, ""
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("status") == "False":
            return False, cond.get("message") or cond.get("reason") or "not progressing"
    return False, "no ready replica yet"
