"""Stand-ins for the Kubeflow operators the shared cluster lacks: a test double for the operator
only, everything around it real.

The cluster serves the PyTorchJob, TrainJob and InferenceService CRDs but runs no Training
Operator, Trainer or KServe controller. `StandIns` polls the real API server for those objects in
one namespace and does to the cluster what the operators do (Training Operator v1.9, Trainer v2.3,
KServe v0.15 in RawDeployment mode), reading the objects as the API server stored them, so a field
the CRD's schema pruned never reaches a pod:

- PyTorchJob: one Pod per replica from the replica's template, with the operator's labels
  (training.kubeflow.org/job-name, replica-type, replica-index, job-role), an ownerReference to the
  job (garbage collection removes the pods with it), MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK and
  PYTHONUNBUFFERED in the `pytorch` container; then the conditions Created, Running and Succeeded
  or Failed, and replicaStatuses, through the status subresource.
- TrainJob: one Pod per node from the ClusterTrainingRuntime the job names (read from the
  cluster), with the trainer's image, command, env and resources and the job's runtimePatches
  applied to the `node` container, JobSet's labels (jobset.sigs.k8s.io/jobset-name,
  batch.kubernetes.io/job-completion-index, ...) and the torch plugin's PET_* variables; then
  Complete or Failed and jobsStatus.
- InferenceService: a Deployment `<name>-predictor` (the cluster's own Deployment controller makes
  the pod) running the predictor's PodSpec, labelled serving.kserve.io/inferenceservice, and its
  Service, both owned by the InferenceService; then PredictorReady and Ready from the
  Deployment's available replicas.

Where they differ, because the cluster has no DNS: the operators point MASTER_ADDR (PET_MASTER_ADDR)
at a headless Service name; here it is the master pod's IP, so the master (node 0) is created first
and the others once it has an IP, and the master itself gets its own IP from the downward API. The
per-replica headless Services and the JobSet/Job objects in between are not made (no DNS to use
them); the pods are made directly.
"""

from __future__ import annotations

import copy
import datetime
import threading
import time
import traceback
from typing import Any

from minikf.kube import objects as res

MASTER_PORT = 23456  # the Training Operator's default port ("pytorchjob-port")
PET_MASTER_PORT = 29400  # Trainer's torch plugin's rendezvous port
POLL_S = 0.5


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _owner(obj: dict) -> dict:
    meta = obj["metadata"]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"],
            "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}


def _own_ip() -> dict:
    return {"valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def _phase(pod) -> str:
    return (pod.status.phase if pod.status else None) or "Pending"


def _set_condition(conditions: list[dict], kind: str, status: str, reason: str, message: str) -> list[dict]:
    """`conditions` with `kind` set; its transition time kept when its status does not change."""
    out, now = [], _now()
    for cond in conditions:
        if cond["type"] == kind:
            if cond["status"] == status and cond.get("reason") == reason:
                return conditions
            continue
        out.append(cond)
    out.append({"type": kind, "status": status, "reason": reason, "message": message,
                "lastTransitionTime": now})
    return out


def _merge_containers(base: list[dict], patch: list[dict]) -> list[dict]:
    """A strategic-merge of containers by name: lists (env, volumeMounts, ports) appended, the
    rest replaced."""
    out = [copy.deepcopy(c) for c in base]
    for extra in patch:
        target = next((c for c in out if c["name"] == extra["name"]), None)
        if target is None:
            out.append(copy.deepcopy(extra))
            continue
        for key, value in extra.items():
            if isinstance(value, list) and isinstance(target.get(key), list):
                target[key] = target[key] + copy.deepcopy(value)
            else:
                target[key] = copy.deepcopy(value)
    return out


class StandIns:
    """Plays the Training Operator, Trainer and KServe for one namespace while it runs (a thread
    polling the API server); `with StandIns(...)` stops it and re-raises what went wrong in it."""

    def __init__(self, api_client, namespace: str) -> None:
        from kubernetes import client

        self.namespace = namespace
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.errors: list[str] = []
        self.created_pods: list[dict] = []  # every pod manifest sent, for tests to look at
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="minikf-standins", daemon=True)

    def __enter__(self) -> StandIns:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self.errors and exc[0] is None:
            raise AssertionError("a stand-in controller failed:\n" + "\n".join(self.errors))

    def _loop(self) -> None:
        while not self._stop.is_set():
            for crd, reconcile in ((res.PYTORCHJOB, self.pytorchjob), (res.TRAINJOB, self.trainjob),
                                   (res.INFERENCESERVICE, self.inference_service)):
                try:
                    items = self.custom.list_namespaced_custom_object(
                        crd.group, crd.version, self.namespace, crd.plural)["items"]
                    for obj in items:
                        if not obj["metadata"].get("deletionTimestamp"):
                            reconcile(obj)
                except Exception as exc:  # noqa: BLE001 - kept and raised by __exit__
                    from kubernetes.client.rest import ApiException

                    if isinstance(exc, ApiException) and exc.status in (404, 409):
                        continue  # deleted or changed meanwhile: the next round sees it
                    self.errors.append(traceback.format_exc(limit=3))
            self._stop.wait(POLL_S)

    # -- shared ---------------------------------------------------------------------------------
    def _pods(self, selector: str) -> list:
        return self.core.list_namespaced_pod(self.namespace, label_selector=selector).items

    def _create_pod(self, pod: dict) -> None:
        self.created_pods.append(pod)
        self.core.create_namespaced_pod(self.namespace, pod)

    def _patch_status(self, crd, name: str, status: dict) -> None:
        self.custom.patch_namespaced_custom_object_status(
            crd.group, crd.version, self.namespace, crd.plural, name, {"status": status})

    # -- Training Operator: PyTorchJob ----------------------------------------------------------
    def pytorchjob(self, job: dict) -> None:
        name, status = job["metadata"]["name"], job.get("status") or {}
        conditions = status.get("conditions") or []
        if any(c["type"] in ("Succeeded", "Failed") and c["status"] == "True" for c in conditions):
            return  # finished; cleanPodPolicy None keeps the pods for their logs
        specs = job["spec"]["pytorchReplicaSpecs"]
        world = sum(int(s.get("replicas", 1)) for s in specs.values())
        pods = {p.metadata.name: p for p in self._pods(f"training.kubeflow.org/job-name={name}")}
        master = pods.get(f"{name}-master-0")
        if master is None:
            self._create_pod(self._replica_pod(job, "Master", 0, 0, world, None))
        elif master.status and master.status.pod_ip:
            rank = 1
            for index in range(int(specs.get("Worker", {}).get("replicas", 0))):
                if f"{name}-worker-{index}" not in pods:
                    self._create_pod(self._replica_pod(job, "Worker", index, rank, world,
                                                       master.status.pod_ip))
                rank += 1
        conditions = _set_condition(conditions, "Created", "True", "PyTorchJobCreated",
                                    f"PyTorchJob {name} is created.")
        replica_statuses: dict[str, dict] = {}
        for rtype in specs:
            mine = [p for p in pods.values()
                    if p.metadata.labels.get("training.kubeflow.org/replica-type") == rtype.lower()]
            replica_statuses[rtype] = {
                "active": sum(_phase(p) == "Running" for p in mine),
                "succeeded": sum(_phase(p) == "Succeeded" for p in mine),
                "failed": sum(_phase(p) == "Failed" for p in mine)}
        failed = {t: s["failed"] for t, s in replica_statuses.items() if s["failed"]}
        if failed:  # backoffLimit 0, restartPolicy Never: one failed pod fails the job
            rtype, count = next(iter(failed.items()))
            conditions = _set_condition(conditions, "Running", "False", "PyTorchJobFailed", "")
            conditions = _set_condition(conditions, "Failed", "True", "PyTorchJobFailed",
                                        f"PyTorchJob {name} is failed because {count} {rtype} "
                                        f"replica(s) failed.")
        elif replica_statuses["Master"]["succeeded"]:
            conditions = _set_condition(conditions, "Running", "False", "PyTorchJobSucceeded", "")
            conditions = _set_condition(conditions, "Succeeded", "True", "PyTorchJobSucceeded",
                                        f"PyTorchJob {name} is successfully completed.")
        elif len(pods) == world and all(_phase(p) == "Running" for p in pods.values()):
            conditions = _set_condition(conditions, "Running", "True", "PyTorchJobRunning",
                                        f"PyTorchJob {name} is running.")
        new = {"conditions": conditions, "replicaStatuses": replica_statuses,
               "startTime": status.get("startTime") or _now()}
        if any(c["type"] in ("Succeeded", "Failed") and c["status"] == "True" for c in conditions):
            new["completionTime"] = _now()
        if new["conditions"] != status.get("conditions") or replica_statuses != status.get("replicaStatuses"):
            self._patch_status(res.PYTORCHJOB, name, new)

    def _replica_pod(self, job: dict, rtype: str, index: int, rank: int, world: int,
                     master_ip: str | None) -> dict:
        name = job["metadata"]["name"]
        spec = job["spec"]["pytorchReplicaSpecs"][rtype]
        template = copy.deepcopy(spec["template"])
        labels = {**(template.get("metadata") or {}).get("labels", {}),
                  "training.kubeflow.org/operator-name": "pytorchjob-controller",
                  "training.kubeflow.org/job-name": name,
                  "training.kubeflow.org/replica-type": rtype.lower(),
                  "training.kubeflow.org/replica-index": str(index)}
        if rtype == "Master":
            labels["training.kubeflow.org/job-role"] = "master"
        pod_spec = template["spec"]
        policy = spec.get("restartPolicy", "Never")
        pod_spec["restartPolicy"] = "Never" if policy == "ExitCode" else policy
        for container in pod_spec["containers"]:
            if container["name"] != "pytorch":
                continue
            address = {"value": master_ip} if master_ip else _own_ip()
            container["env"] = [*container.get("env", []),
                                {"name": "MASTER_PORT", "value": str(MASTER_PORT)},
                                {"name": "PYTHONUNBUFFERED", "value": "1"},
                                {"name": "MASTER_ADDR", **address},
                                {"name": "WORLD_SIZE", "value": str(world)},
                                {"name": "RANK", "value": str(rank)}]
            if not any(p.get("name") == "pytorchjob-port" for p in container.get("ports", [])):
                container["ports"] = [*container.get("ports", []),
                                      {"name": "pytorchjob-port", "containerPort": MASTER_PORT}]
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"{name}-{rtype.lower()}-{index}", "namespace": self.namespace,
                             "labels": labels,
                             "annotations": (template.get("metadata") or {}).get("annotations", {}),
                             "ownerReferences": [_owner(job)]},
                "spec": pod_spec}

    # -- Trainer: TrainJob ----------------------------------------------------------------------
    def trainjob(self, job: dict) -> None:
        name, status = job["metadata"]["name"], job.get("status") or {}
        conditions = status.get("conditions") or []
        if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions):
            return
        trainer = job["spec"].get("trainer") or {}
        ref = job["spec"]["runtimeRef"]
        runtime = self.custom.get_cluster_custom_object("trainer.kubeflow.org", "v1alpha1",
                                                        "clustertrainingruntimes", ref["name"])
        nodes = int(trainer.get("numNodes") or runtime["spec"]["mlPolicy"].get("numNodes", 1))
        pods = {p.metadata.name: p for p in self._pods(f"jobset.sigs.k8s.io/jobset-name={name}")}
        node0 = pods.get(f"{name}-node-0-0")
        if node0 is None:
            self._create_pod(self._node_pod(job, runtime, 0, nodes, None))
        elif node0.status and node0.status.pod_ip:
            for index in range(1, nodes):
                if f"{name}-node-0-{index}" not in pods:
                    self._create_pod(self._node_pod(job, runtime, index, nodes, node0.status.pod_ip))
        phases = [_phase(p) for p in pods.values()]
        counts = {"active": sum(p in ("Pending", "Running") for p in phases),
                  "failed": int(any(p == "Failed" for p in phases)),
                  "ready": int(len(phases) == nodes and all(p == "Running" for p in phases)),
                  "succeeded": int(len(phases) == nodes and all(p == "Succeeded" for p in phases)),
                  "suspended": 0}
        if counts["failed"]:
            failed = sorted(p.metadata.name for p in pods.values() if _phase(p) == "Failed")
            conditions = _set_condition(conditions, "Failed", "True", "JobSetFailed",
                                        f"jobset failed: pod(s) {', '.join(failed)} failed")
        elif counts["succeeded"]:
            conditions = _set_condition(conditions, "Complete", "True", "JobSetCompleted",
                                        "jobset completed")
        new = {"conditions": conditions, "jobsStatus": [{"name": "node", **counts}]}
        if new["conditions"] != status.get("conditions") or new["jobsStatus"] != status.get("jobsStatus"):
            self._patch_status(res.TRAINJOB, name, {k: v for k, v in new.items() if v})

    def _node_pod(self, job: dict, runtime: dict, index: int, nodes: int, master_ip: str | None) -> dict:
        name, trainer = job["metadata"]["name"], job["spec"].get("trainer") or {}
        replicated = next(r for r in runtime["spec"]["template"]["spec"]["replicatedJobs"]
                          if r["name"] == "node")
        job_template = copy.deepcopy(replicated["template"])
        pod_template = job_template["spec"]["template"]
        pod_spec = pod_template["spec"]
        for patch in job["spec"].get("runtimePatches") or []:
            spec = ((patch.get("trainingRuntimeSpec") or {}).get("template") or {}).get("spec") or {}
            for rj in spec.get("replicatedJobs") or []:
                if rj.get("name") != "node":
                    continue
                extra = rj["template"]["spec"]["template"]["spec"]
                pod_spec["volumes"] = [*pod_spec.get("volumes", []), *extra.get("volumes", [])]
                pod_spec["containers"] = _merge_containers(pod_spec["containers"],
                                                           extra.get("containers", []))
        pod_spec.setdefault("restartPolicy", "Never")
        for container in pod_spec["containers"]:
            if container["name"] != "node":
                continue
            for key in ("image", "command", "args"):
                if trainer.get(key):
                    container[key] = list(trainer[key]) if key != "image" else trainer[key]
            if trainer.get("resourcesPerNode"):
                container["resources"] = trainer["resourcesPerNode"]
            address = {"value": master_ip} if master_ip else _own_ip()
            index_label = "metadata.labels['batch.kubernetes.io/job-completion-index']"
            container["env"] = [*container.get("env", []), *trainer.get("env", []),
                                {"name": "PET_NNODES", "value": str(nodes)},
                                {"name": "PET_NPROC_PER_NODE",
                                 "value": str(trainer.get("numProcPerNode", 1))},
                                {"name": "PET_NODE_RANK",
                                 "valueFrom": {"fieldRef": {"fieldPath": index_label}}},
                                {"name": "PET_MASTER_ADDR", **address},
                                {"name": "PET_MASTER_PORT", "value": str(PET_MASTER_PORT)}]
        labels = {**(job_template.get("metadata") or {}).get("labels", {}),
                  **(pod_template.get("metadata") or {}).get("labels", {}),
                  "jobset.sigs.k8s.io/jobset-name": name,
                  "jobset.sigs.k8s.io/replicatedjob-name": "node",
                  "jobset.sigs.k8s.io/job-index": "0",
                  "batch.kubernetes.io/job-completion-index": str(index)}
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"{name}-node-0-{index}", "namespace": self.namespace,
                             "labels": labels, "ownerReferences": [_owner(job)]},
                "spec": pod_spec}

    # -- KServe: InferenceService (RawDeployment) -----------------------------------------------
    def inference_service(self, isvc: dict) -> None:
        from kubernetes.client.rest import ApiException

        name = isvc["metadata"]["name"]
        deployment_name = f"{name}-predictor"
        try:
            deployment = self.apps.read_namespaced_deployment(deployment_name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self._create_predictor(isvc, deployment_name)
            deployment = None
        available = (deployment.status.available_replicas or 0) if deployment and deployment.status else 0
        status = isvc.get("status") or {}
        conditions = status.get("conditions") or []
        if available:
            ready = ("True", "", "")
        else:
            ready = ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        for kind in ("PredictorReady", "Ready"):
            conditions = _set_condition(conditions, kind, *ready)
        new = {"conditions": conditions, "observedGeneration": isvc["metadata"].get("generation", 1)}
        if available:
            new["url"] = f"http://{deployment_name}.{self.namespace}.svc.cluster.local"
        if conditions != status.get("conditions"):
            self._patch_status(res.INFERENCESERVICE, name, new)

    def _create_predictor(self, isvc: dict, deployment_name: str) -> None:
        from kubernetes.client import V1PodSpec

        name, predictor = isvc["metadata"]["name"], isvc["spec"]["predictor"]
        pod_fields = set(V1PodSpec.attribute_map.values())  # the predictor is a PodSpec plus KServe's own
        pod_spec = {k: copy.deepcopy(v) for k, v in predictor.items() if k in pod_fields}
        selector = {"app": f"isvc.{deployment_name}"}
        labels = {**(isvc["metadata"].get("labels") or {}), **(predictor.get("labels") or {}), **selector,
                  "serving.kserve.io/inferenceservice": name, "component": "predictor"}
        meta = {"name": deployment_name, "namespace": self.namespace, "labels": labels,
                "ownerReferences": [_owner(isvc)]}
        self.apps.create_namespaced_deployment(self.namespace, {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": int(predictor.get("minReplicas") or 1),
                     "selector": {"matchLabels": selector},
                     "template": {"metadata": {"labels": labels,
                                               "annotations": predictor.get("annotations") or {}},
                                  "spec": pod_spec}}})
        port = pod_spec["containers"][0].get("ports", [{}])[0].get("containerPort", res.MODEL_PORT)
        self.core.create_namespaced_service(self.namespace, {
            "apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": port}]}})


def wait_until(what: str, check, timeout_s: float = 60.0) -> Any:
    """Poll `check()` until it returns something true; AssertionError naming `what` past timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout_s:g}s")
        time.sleep(0.5)
