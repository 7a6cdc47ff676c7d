"""A cluster with Kubeflow: training as a PyTorchJob (or Trainer TrainJob), serving as a KServe
InferenceService, predict through a port-forward to the predictor pod.

Connecting happens when the platform is built, so a bad --kubeconfig, an unreachable server or
rejected credentials stop `minikf run` before any step with one line. Capabilities come from the
CRDs the cluster serves (API discovery); a scenario needing one that is missing is skipped with
the CRD named. Each journey step that needs the cluster calls one hook here (run_training,
serve_model); steps that work on files (download, preprocess, evaluate, predict) run on this host.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minikf.kube import objects as res
from minikf.kube.client import Cluster, connect, missing_crds, require_permissions
from minikf.platforms.base import Platform, ServeRequest, StatusHook, TrainRequest, no_status
from minikf.platforms.cores import WorkerPlan
from minikf.runtime.errors import StepFailed
from minikf.runtime.processes import ProcessHandle, RunResources
from minikf.workload.contract import recipe_flags

POLL_S = 2.0
# capability -> the CRDs that provide it (any one is enough); only capabilities whose steps
# are implemented on this platform are claimed.
PROVIDERS = {"training": [res.PYTORCHJOB, res.TRAINJOB], "serving": [res.INFERENCESERVICE]}
ALSO_REPORTED = [res.EXPERIMENT, res.NOTEBOOK]
# Controller deployments whose image tag says which version of a component the cluster runs.
COMPONENT_DEPLOYMENTS = {
    "ml-pipeline": "Kubeflow Pipelines", "training-operator": "Training Operator",
    "kubeflow-trainer-controller-manager": "Kubeflow Trainer", "kserve-controller-manager": "KServe",
    "katib-controller": "Katib", "notebook-controller-deployment": "Notebooks",
    "profiles-deployment": "Profiles",
}
COMPONENT_NAMESPACES = ("kubeflow", "kubeflow-system", "kserve")


# `workers: auto` on a cluster: a PyTorchJob's master and one worker.
CLUSTER_AUTO_WORKERS = 2


class ClusterStepFailed(StepFailed):
    """A cluster resource failed; the message says which and why."""


@dataclass
class KubernetesPlatform(Platform):
    kubeconfig: str | None = None
    namespace: str | None = None
    context: str | None = None
    image: str = field(default_factory=lambda: os.environ.get("MINIKF_RUNTIME_IMAGE", res.RUNTIME_IMAGE))
    kfp_namespace: str = field(default_factory=lambda: os.environ.get("MINIKF_KFP_NAMESPACE", "kubeflow"))
    name: str = "kubernetes"
    cluster: Cluster | None = field(default=None, repr=False)
    _versions: dict[str, str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.cluster is None:
            self.cluster = connect(self.kubeconfig, self.context)
        self.namespace = self.namespace or self.cluster.namespace
        everything = [c for crds in PROVIDERS.values() for c in crds] + ALSO_REPORTED
        absent = set(missing_crds(self.cluster, everything))
        self.crds = {c.name: c not in absent for c in everything}
        found = {cap for cap, crds in PROVIDERS.items() if any(c not in absent for c in crds)}
        self.kfp = self._find_kfp()
        if self.kfp.startswith("found"):
            found.add("pipelines")
        self.capabilities = frozenset(found)
        self.train_kind = "PyTorchJob" if res.PYTORCHJOB not in absent else "TrainJob"

    # -- the Platform interface ---------------------------------------------------------------
    def describe(self) -> dict:
        return {"name": self.name, "capabilities": sorted(self.capabilities),
                "server": self.cluster.server, "kubernetes": self.cluster.version,
                "context": self.cluster.context, "namespace": self.namespace,
                "crds": self.crds, "training_resource": self.train_kind, "image": self.image,
                "kfp": self.kfp, "components": self.component_versions()}

    def component_versions(self) -> dict[str, str]:
        """Kubeflow component -> image tag of its controller, for the results' versions; best
        effort: a namespace this user may not read says so instead of failing the run."""
        if self._versions is not None:
            return self._versions
        import urllib3
        from kubernetes.client.rest import ApiException

        from minikf.kube.client import api_call

        found: dict[str, str] = {}
        for namespace in COMPONENT_NAMESPACES:
            try:
                doc = api_call(self.cluster, f"/apis/apps/v1/namespaces/{namespace}/deployments",
                               timeout_s=self.cluster.timeout_s)
            except ApiException as exc:
                if exc.status == 403:
                    found[f"({namespace})"] = "deployments not readable by this user"
                continue
            except urllib3.exceptions.HTTPError as exc:
                found[f"({namespace})"] = f"not read: {type(exc).__name__}"
                continue
            for item in doc.get("items", []):
                component = COMPONENT_DEPLOYMENTS.get(item["metadata"]["name"])
                containers = item.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
                if component and containers:
                    image = containers[0].get("image", "")
                    found[component] = image.rsplit("@", 1)[-1] if "@" in image else image.rsplit(":", 1)[-1]
        self._versions = found
        return found

    def _find_kfp(self) -> str:
        """Whether a Kubeflow Pipelines API is there: MINIKF_KFP_HOST, or its pod in kfp_namespace."""
        if os.environ.get("MINIKF_KFP_HOST"):
            return f"found at {os.environ['MINIKF_KFP_HOST']} (MINIKF_KFP_HOST)"
        import urllib3
        from kubernetes.client.rest import ApiException

        from minikf.kube.kfp_driver import KFP_SELECTOR

        try:
            pods = self._core().list_namespaced_pod(self.kfp_namespace, label_selector=KFP_SELECTOR,
                                                    _request_timeout=self.cluster.timeout_s)
        except ApiException as exc:
            return (f"not checked: listing pods in {self.kfp_namespace!r} gave HTTP {exc.status} "
                    f"(set MINIKF_KFP_HOST to the KFP API's URL)")
        except urllib3.exceptions.HTTPError as exc:
            return f"not checked: {type(exc).__name__} listing pods in {self.kfp_namespace!r}"
        if not pods.items:
            return f"not found: no {KFP_SELECTOR} pod in namespace {self.kfp_namespace!r}"
        return f"found: pod {pods.items[0].metadata.name} in namespace {self.kfp_namespace!r}"

    def missing(self, required: list[str]) -> list[str]:
        lacking = []
        for cap in required:
            if cap in self.capabilities:
                continue
            if cap == "pipelines":
                lacking.append(f"pipelines (Kubeflow Pipelines API {self.kfp})")
            elif cap in PROVIDERS:
                names = " or ".join(f"{c.name} ({c.component})" for c in PROVIDERS[cap])
                lacking.append(f"{cap} (no {names} CRD on the cluster)")
            else:
                lacking.append(f"{cap} (not implemented on the kubernetes platform yet)")
        return lacking

    def launch(self, argv: list[str], env: dict[str, str], log_path: Path,
               resources: RunResources) -> ProcessHandle:
        if "minikf.pipelines.run_local" in argv:
            return self.launch_driver(argv, env, log_path, resources)
        raise ClusterStepFailed(
            f"this step starts a process ({' '.join(argv[:3])} ...), which the kubernetes platform "
            f"does not run on this host; it has no cluster form yet")

    def launch_driver(self, argv: list[str], env: dict[str, str], log_path: Path,
                      resources: RunResources) -> ProcessHandle:
        """The pipeline step's driver: here minikf.kube.kfp_driver, which submits the compiled
        pipeline to the cluster's KFP API with kfp.Client and waits for the run."""
        at = argv.index("minikf.pipelines.run_local")
        driver = [*argv[:at], "minikf.kube.kfp_driver", *argv[at + 1:]]
        cluster_env = {"MINIKF_KUBECONFIG": self.cluster.kubeconfig, "MINIKF_NAMESPACE": self.namespace,
                       "MINIKF_KUBE_CONTEXT": self.cluster.context,
                       "MINIKF_KFP_NAMESPACE": self.kfp_namespace, "MINIKF_RUNTIME_IMAGE": self.image}
        # SIGTERM if minikf dies: the driver then terminates the run on the cluster first
        return resources.spawn(driver, log_path, env={**os.environ, **env, **cluster_env},
                               death_signal=signal.SIGTERM)

    # -- hooks the journey's steps call ----------------------------------------------------------
    def _custom(self):
        from kubernetes import client

        return client.CustomObjectsApi(self.cluster.api_client)

    def _core(self):
        from kubernetes import client

        return client.CoreV1Api(self.cluster.api_client)

    def _labels(self, run: str) -> dict[str, str]:
        return {"app.kubernetes.io/managed-by": "minikf", "minikf.dev/run": run}

    def _note_leftovers(self, resources, labels: dict[str, str]) -> None:
        """Write into the run's record what to delete (objects with these labels) should the run
        be killed before its cleanup deletes them (`reap`)."""
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

        def add(record) -> None:
            entry = record.platform_leftovers.setdefault(self.name, {
                "kubeconfig": self.cluster.kubeconfig, "context": self.cluster.context,
                "namespace": self.namespace, "selectors": []})
            if selector not in entry["selectors"]:
                entry["selectors"].append(selector)

        if hasattr(resources, "update_record"):
            resources.update_record(add)

    @classmethod
    def reap(cls, details: dict) -> list[str]:
        """The objects a killed run created (ConfigMaps, Secrets, jobs, InferenceServices), by
        the labels it noted; their pods go with them (owner references)."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        cluster = connect(details.get("kubeconfig"), details.get("context"))
        namespace, lines = details["namespace"], []
        core, custom = client.CoreV1Api(cluster.api_client), client.CustomObjectsApi(cluster.api_client)
        kinds = [("ConfigMap", core.list_namespaced_config_map, core.delete_namespaced_config_map),
                 ("Secret", core.list_namespaced_secret, core.delete_namespaced_secret)]
        for crd in (res.PYTORCHJOB, res.TRAINJOB, res.INFERENCESERVICE):
            kinds.append((crd.plural, *_custom_calls(custom, crd)))
        try:
            for selector in details.get("selectors", []):
                for kind, lister, deleter in kinds:
                    try:
                        found = lister(namespace, label_selector=selector, _request_timeout=30)
                    except ApiException as exc:
                        if exc.status != 404:  # 404: the CRD is not on this cluster
                            lines.append(f"could not list {kind} ({selector}): HTTP {exc.status}")
                        continue
                    items = found["items"] if isinstance(found, dict) else found.items
                    for item in items:
                        meta = item["metadata"] if isinstance(item, dict) else item.metadata.to_dict()
                        try:
                            deleter(meta["name"], namespace, _request_timeout=30)
                            lines.append(f"removed {kind} {meta['name']} in namespace {namespace}")
                        except ApiException as exc:
                            if exc.status != 404:
                                lines.append(f"could not remove {kind} {meta['name']}: "
                                             f"HTTP {exc.status}")
        finally:
            cluster.close()
        return lines

    def _delete_later(self, resources, what: str, delete) -> None:
        """Delete on cleanup; a resource already gone is fine, any other failure is reported."""
        from kubernetes.client.rest import ApiException

        def callback() -> None:
            try:
                delete()
            except ApiException as exc:
                if exc.status != 404:
                    raise RuntimeError(f"deleting {what}: HTTP {exc.status} {exc.reason}") from None

        resources.on_cleanup(callback)

    def _api(self, what: str, call, *args, **kwargs) -> Any:
        """One API call; an API error becomes one line naming the call and the server's reason."""
        import json

        import urllib3
        from kubernetes.client.rest import ApiException

        try:
            return call(*args, **kwargs, _request_timeout=30)
        except ApiException as exc:
            try:
                reason = json.loads(exc.body or "{}").get("message") or exc.reason
            except ValueError:
                reason = exc.reason
            raise ClusterStepFailed(f"{what} in namespace {self.namespace!r}: HTTP {exc.status}: "
                                    f"{reason}") from None
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterStepFailed(f"{what}: lost the API server at {self.cluster.server}: "
                                    f"{type(exc).__name__}") from None

    def _create_configmap(self, obj: dict, resources) -> None:
        name = obj["metadata"]["name"]
        self._api(f"create ConfigMap {name}", self._core().create_namespaced_config_map,
                  self.namespace, obj)
        self._delete_later(resources, f"ConfigMap {name}",
                           lambda: self._core().delete_namespaced_config_map(name, self.namespace))

    def _data_source(self, request: TrainRequest, resources) -> tuple[str, list[str]]:
        """(mirrors for the pods, ConfigMap names): URLs go as they are; a local directory (the
        bundled sample) travels as ConfigMaps mounted into every worker."""
        remote = [m for m in request.mirrors if m.startswith(("http://", "https://"))]
        if remote:
            return ",".join(remote), []
        local = next((Path(m) for m in request.mirrors if Path(m).is_dir()), None)
        if local is None:
            raise ClusterStepFailed(f"mirrors {request.mirrors} has neither an http(s) URL the cluster "
                                    f"can reach nor a local directory to ship to it")
        try:
            objs = res.files_configmaps(res.dns_name(request.name, "data"), self.namespace, local,
                                        self._labels(request.name))
        except res.InvalidResource as exc:
            raise ClusterStepFailed(str(exc)) from None
        for obj in objs:
            self._create_configmap(obj, resources)
        return res.DATA_MOUNT, [o["metadata"]["name"] for o in objs]

    def plan_workers(self, request: TrainRequest) -> WorkerPlan:
        """As asked: the cluster's scheduler places the pods, this host's cores say nothing
        about its nodes; `auto` is CLUSTER_AUTO_WORKERS (a master and a worker)."""
        if request.workers is not None:
            return WorkerPlan(request.workers, request.workers,
                              f"{request.workers} as asked; the cluster schedules them")
        return WorkerPlan(CLUSTER_AUTO_WORKERS, None, f"{CLUSTER_AUTO_WORKERS} (auto on a cluster: "
                          "a master and a worker; the cluster schedules them)")

    def run_training(self, request: TrainRequest, resources: RunResources,
                     status: StatusHook = no_status) -> None:
        """Run the journey's training as one job of N workers; bring model/ and metrics.jsonl
        back into `request.out` from the rank-0 log. Raises ClusterStepFailed naming what failed."""
        log_path, dest = request.log_path, request.out
        plural = "pytorchjobs" if self.train_kind == "PyTorchJob" else "trainjobs"
        needs = res.COMMON_PERMISSIONS + res.TRAIN_PERMISSIONS[plural]
        require_permissions(self.cluster, self.namespace, needs)
        self._note_leftovers(resources, self._labels(request.name))
        mirrors, configmaps = self._data_source(request, resources)
        argv = ["python3", "-m", "minikf.kube.job_entry", "--mirrors", mirrors,
                "--epochs", str(request.epochs), "--batch-size", str(request.batch_size),
                "--lr", str(request.lr)]
        if request.sample:
            argv.append("--sample")
        argv += recipe_flags(request.schedule, request.augment)
        spec = res.TrainSpec(name=res.dns_name(request.name), namespace=self.namespace,
                             workers=request.workers or CLUSTER_AUTO_WORKERS, argv=argv,
                             image=self.image, data_configmaps=configmaps, labels=self._labels(request.name))
        crd = res.PYTORCHJOB if plural == "pytorchjobs" else res.TRAINJOB
        obj = res.pytorchjob(spec) if plural == "pytorchjobs" else res.trainjob(spec)
        custom = self._custom()
        what = f"{self.train_kind} {spec.name}"
        self._api(f"create {what}", custom.create_namespaced_custom_object,
                  crd.group, crd.version, self.namespace, plural, obj)
        self._delete_later(resources, what, lambda: custom.delete_namespaced_custom_object(
            crd.group, crd.version, self.namespace, plural, spec.name))
        deadline = time.monotonic() + request.timeout_s
        while True:
            current = self._api(f"get {what}", custom.get_namespaced_custom_object,
                                crd.group, crd.version, self.namespace, plural, spec.name)
            finished, succeeded, message = res.job_finished(current)
            if finished:
                break
            if time.monotonic() > deadline:
                pods = self._pods_summary(res.job_pods_selector(self.train_kind, spec.name))
                raise ClusterStepFailed(f"{what} not finished after {request.timeout_s:g}s; {pods}")
            status(f"{what}: running ({request.workers} workers)")
            time.sleep(POLL_S)
        try:
            log = self._rank0_log(spec.name)
        except ClusterStepFailed as exc:
            if succeeded:
                raise
            raise ClusterStepFailed(f"{what} failed: {message} ({exc})") from None
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(log_path).write_text(res.without_archive(log))
        if not succeeded:
            tail = "\n".join(log.strip().splitlines()[-5:])
            raise ClusterStepFailed(f"{what} failed: {message}; rank-0 log tail:\n{tail}")
        try:
            res.unpack_from_log(log, dest)
        except ValueError as exc:
            raise ClusterStepFailed(f"{what} succeeded but {exc} (log: {log_path})") from None

    def _rank0_log(self, job: str) -> str:
        core = self._core()
        selector = res.rank0_selector(self.train_kind, job)
        pods = self._api("list pods", core.list_namespaced_pod, self.namespace, label_selector=selector)
        if not pods.items:
            raise ClusterStepFailed(f"no rank-0 pod of {self.train_kind} {job} ({selector})")
        name = pods.items[0].metadata.name
        # raw bytes: the client would json-decode a log that happens to be one JSON document
        response = self._api(f"read log of pod {name}", core.read_namespaced_pod_log, name,
                             self.namespace, _preload_content=False)
        return response.data.decode(errors="replace")

    def _pods_summary(self, selector: str) -> str:
        """Each pod's phase and, for a container that is waiting or terminated, the reason:
        what a user needs when a job or server never comes up (ErrImagePull, Pending, ...)."""
        try:
            pods = self._api("list pods", self._core().list_namespaced_pod, self.namespace,
                             label_selector=selector)
        except ClusterStepFailed as exc:
            return f"pods not listed: {exc}"
        if not pods.items:
            return f"no pods ({selector}) were created"
        parts = []
        for pod in pods.items:
            phase = (pod.status.phase if pod.status else None) or "Unknown"
            reasons = []
            for cs in (pod.status.container_statuses if pod.status else None) or []:
                state = cs.state
                detail = (state.waiting if state and state.waiting else
                          state.terminated if state and state.terminated else None)
                if detail is not None and detail.reason:
                    reasons.append(f"{cs.name}: {detail.reason}" +
                                   (f" ({detail.message.splitlines()[0]})" if detail.message else ""))
            parts.append(f"{pod.metadata.name} {phase}" + (f" [{'; '.join(reasons)}]" if reasons else ""))
        return "pods: " + ", ".join(parts)

    def serve_model(self, request: ServeRequest, resources: RunResources,
                    status: StatusHook = no_status) -> str:
        """Serve `request.model_dir` as an InferenceService; return a local URL (a port-forward)
        to it."""
        name, model_dir, token, timeout_s = (request.name, request.model_dir, request.token,
                                             request.timeout_s)
        require_permissions(self.cluster, self.namespace, res.COMMON_PERMISSIONS + res.SERVE_PERMISSIONS)
        isvc_name = res.dns_name(name, limit=45)
        labels = self._labels(name)
        self._note_leftovers(resources, labels)
        secret = res.token_secret(res.dns_name(name, "token"), self.namespace, token, labels)
        core = self._core()
        self._api("create the serving token Secret", core.create_namespaced_secret, self.namespace, secret)
        self._delete_later(resources, "token Secret", lambda: core.delete_namespaced_secret(
            secret["metadata"]["name"], self.namespace))
        try:
            models = res.files_configmaps(res.dns_name(name, "model"), self.namespace, model_dir, labels)
        except res.InvalidResource as exc:
            raise ClusterStepFailed(str(exc)) from None
        for obj in models:
            self._create_configmap(obj, resources)
        obj = res.inference_service(res.ServeSpec(
            name=isvc_name, namespace=self.namespace,
            model_configmaps=[o["metadata"]["name"] for o in models],
            token_secret=secret["metadata"]["name"], image=self.image, labels=labels))
        crd, custom = res.INFERENCESERVICE, self._custom()
        what = f"InferenceService {isvc_name}"
        self._api(f"create {what}", custom.create_namespaced_custom_object,
                  crd.group, crd.version, self.namespace, crd.plural, obj)
        self._delete_later(resources, what, lambda: custom.delete_namespaced_custom_object(
            crd.group, crd.version, self.namespace, crd.plural, isvc_name))
        deadline = time.monotonic() + timeout_s
        while True:
            current = self._api(f"get {what}", custom.get_namespaced_custom_object,
                                crd.group, crd.version, self.namespace, crd.plural, isvc_name)
            ready, why = res.service_ready(current)
            if ready:
                break
            if time.monotonic() > deadline:
                pods = self._pods_summary(res.predictor_selector(isvc_name))
                raise ClusterStepFailed(f"{what} not ready after {timeout_s:g}s: {why}; {pods}")
            status(f"{what}: {why}")
            time.sleep(POLL_S)
        pods = self._api("list predictor pods", core.list_namespaced_pod, self.namespace,
                         label_selector=res.predictor_selector(isvc_name))
        running = [p for p in pods.items if (p.status and p.status.phase) == "Running"]
        if not running:
            raise ClusterStepFailed(f"{what} is Ready but no predictor pod is Running")
        from minikf.kube.portforward import PortForward

        forward = PortForward(self.cluster.api_client, self.namespace, running[0].metadata.name,
                              res.MODEL_PORT)
        resources.on_cleanup(forward.close)
        return forward.start()

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.close()


def _custom_calls(custom, crd):
    """List and delete calls for one custom resource, shaped like the core ones."""
    def lister(namespace, **kwargs):
        return custom.list_namespaced_custom_object(crd.group, crd.version, namespace, crd.plural,
                                                    **kwargs)

    def deleter(name, namespace, **kwargs):
        return custom.delete_namespaced_custom_object(crd.group, crd.version, namespace,
                                                      crd.plural, name, **kwargs)

    return lister, deleter
