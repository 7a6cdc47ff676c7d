"""The kubernetes platform: a journey's training and serving on a cluster, in one of two flavors.

- kubeflow: training as a PyTorchJob (Training Operator) or TrainJob (Trainer), serving as a KServe
  InferenceService (kubeflow.py);
- core: plain Kubernetes for clusters without Kubeflow, an Indexed Job and a Deployment (core.py).

Which one runs each capability is discovered (minikf/kube/flavor.py: the CRD served and its
controller ready) or forced (`--flavor`, MINIKF_KUBE_FLAVOR); the results and `minikf kube check`
say which and why. Connecting happens when the platform is built, so a bad --kubeconfig, an
unreachable server or rejected credentials stop `minikf run` before any step with one line. Steps
that work on files (download, preprocess, evaluate, predict) run on this host; predict reaches the
served model through a port-forward.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minikf.kube import flavor as flavors
from minikf.kube import objects as res
from minikf.kube.client import Cluster, connect, missing_crds, require_permissions
from minikf.platforms.base import Platform, ServeRequest, StatusHook, TrainRequest, no_status
from minikf.platforms.cores import WorkerPlan
from minikf.runtime.errors import StepFailed
from minikf.runtime.processes import ProcessHandle, RunResources

POLL_S = 2.0
# A container waiting for one of these will not start by waiting longer.
UNPULLABLE = frozenset({"ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"})
ALSO_REPORTED = [res.EXPERIMENT, res.NOTEBOOK]
# Controller deployments whose image tag says which version of a component the cluster runs.
COMPONENT_DEPLOYMENTS = {
    "ml-pipeline": "Kubeflow Pipelines", "training-operator": "Training Operator",
    "kubeflow-trainer-controller-manager": "Kubeflow Trainer", "kserve-controller-manager": "KServe",
    "katib-controller": "Katib", "notebook-controller-deployment": "Notebooks",
    "profiles-deployment": "Profiles",
}
COMPONENT_NAMESPACES = ("kubeflow", "kubeflow-system", "kserve")


# `workers: auto` on a cluster: rank 0 and one more (the cluster's scheduler places them; this
# host's cores say nothing about its nodes).
CLUSTER_AUTO_WORKERS = 2


class ClusterStepFailed(StepFailed):
    """A cluster resource failed; the message says which and why."""


def wait_budget_s(step_timeout_s: float) -> float:
    """How long the platform waits on the cluster within a step of `step_timeout_s`: a little less,
    so that its own message (which pods, which reason) ends the step, not the engine's timeout."""
    return max(step_timeout_s * 0.5, step_timeout_s - max(5.0, min(30.0, step_timeout_s * 0.1)))


@dataclass
class KubernetesPlatform(Platform):
    kubeconfig: str | None = None
    namespace: str | None = None
    context: str | None = None
    flavor: str | None = None  # auto (default), core or kubeflow; else MINIKF_KUBE_FLAVOR
    image: str = field(default_factory=lambda: os.environ.get("MINIKF_RUNTIME_IMAGE", res.RUNTIME_IMAGE))
    server_image: str = field(default_factory=lambda: os.environ.get("MINIKF_SERVER_IMAGE",
                                                                     "minikf/server:latest"))
    kfp_namespace: str = field(default_factory=lambda: os.environ.get("MINIKF_KFP_NAMESPACE", "kubeflow"))
    name: str = "kubernetes"
    cluster: Cluster | None = field(default=None, repr=False)
    _versions: dict[str, str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.requested_flavor = flavors.requested_flavor(self.flavor)
        if self.cluster is None:
            self.cluster = connect(self.kubeconfig, self.context)
        self.namespace = self.namespace or self.cluster.namespace
        everything = list(flavors.CONTROLLERS) + ALSO_REPORTED
        absent = set(missing_crds(self.cluster, everything))
        self.crds = {c.name: c not in absent for c in everything}
        controllers, unreadable = ({}, []) if self.requested_flavor == "core" else \
            flavors.controller_status(self.cluster)
        self.controllers = controllers
        self.controllers_unreadable = len(unreadable) == len(flavors.CONTROLLER_NAMESPACES)
        self.choices = {cap: flavors.choose(cap, self.requested_flavor, self.crds, controllers, unreadable)
                        for cap in flavors.KUBEFLOW_PATHS}
        found = {cap for cap, choice in self.choices.items()
                 if choice.flavor == "core" or choice.crd is not None}
        self.kfp = self._find_kfp()
        if self.kfp.startswith("found"):
            found.add("pipelines")
        self.capabilities = frozenset(found)
        training = self.choices["training"]
        self.train_kind = ("Job" if training.flavor == "core" else
                           "TrainJob" if training.crd == res.TRAINJOB else "PyTorchJob")

    @property
    def flavors(self) -> dict[str, str]:
        """capability -> "core" or "kubeflow", as chosen for this cluster."""
        return {cap: choice.flavor for cap, choice in self.choices.items()}

    # -- the Platform interface ---------------------------------------------------------------
    def describe(self) -> dict:
        return {"name": self.name, "capabilities": sorted(self.capabilities),
                "server": self.cluster.server, "kubernetes": self.cluster.version,
                "context": self.cluster.context, "namespace": self.namespace,
                "crds": self.crds, "training_resource": self.train_kind, "image": self.image,
                "flavor": self._flavor_summary(),
                "flavors": {cap: choice.line() for cap, choice in self.choices.items()},
                "kfp": self.kfp, "components": self.component_versions(), "trainer_api": self.trainer_api()}

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

    def trainer_version(self) -> tuple[int, int] | None:
        """The Kubeflow Trainer release (from its controller's image tag), None if not readable."""
        return res.parse_trainer_version(self.component_versions().get("Kubeflow Trainer"))

    def trainer_api(self) -> str:
        """What the TrainJobs sent here use to add the data volume, and why (for describe())."""
        version = self.trainer_version()
        if version is None:
            return ("Trainer version not readable here: TrainJobs use runtimePatches (Trainer >= 2.2); "
                    "on Trainer 2.0/2.1 that field would be dropped")
        return f"Trainer {version[0]}.{version[1]}: TrainJobs use {res.trainer_patch_field(version)}"

    def kfp_user(self) -> str | None:
        """The identity multi-user Kubeflow Pipelines wants on direct API calls (`kubeflow-userid`):
        MINIKF_KFP_USER, else the `owner` annotation that Kubeflow's profile controller (and the
        appliance's minikf namespace) puts on the namespace; None if neither says."""
        if os.environ.get("MINIKF_KFP_USER"):
            return os.environ["MINIKF_KFP_USER"]
        import urllib3
        from kubernetes.client.rest import ApiException

        try:
            ns = self.core_api().read_namespace(self.namespace, _request_timeout=self.cluster.timeout_s)
        except (ApiException, urllib3.exceptions.HTTPError):
            return None  # e.g. a user who may not read namespaces: KFP's own error then says what to set
        return (ns.metadata.annotations or {}).get("owner")

    def _find_kfp(self) -> str:
        """Whether a Kubeflow Pipelines API is there: MINIKF_KFP_HOST, or its pod in kfp_namespace."""
        if os.environ.get("MINIKF_KFP_HOST"):
            return f"found at {os.environ['MINIKF_KFP_HOST']} (MINIKF_KFP_HOST)"
        import urllib3
        from kubernetes.client.rest import ApiException

        from minikf.kube.kfp_driver import KFP_SELECTOR

        try:
            pods = self.core_api().list_namespaced_pod(self.kfp_namespace, label_selector=KFP_SELECTOR,
                                                    _request_timeout=self.cluster.timeout_s)
        except ApiException as exc:
            return (f"not checked: listing pods in {self.kfp_namespace!r} gave HTTP {exc.status} "
                    f"(set MINIKF_KFP_HOST to the KFP API's URL)")
        except urllib3.exceptions.HTTPError as exc:
            return f"not checked: {type(exc).__name__} listing pods in {self.kfp_namespace!r}"
        if not pods.items:
            return f"not found: no {KFP_SELECTOR} pod in namespace {self.kfp_namespace!r}"
        return f"found: pod {pods.items[0].metadata.name} in namespace {self.kfp_namespace!r}"

    def permissions_needed(self) -> list:
        """Every verb the journey's training and serving use in the namespace, per flavor."""
        from minikf.kube import core as core_objects

        needs = list(res.COMMON_PERMISSIONS)
        training, serving = self.choices["training"], self.choices["serving"]
        if training.flavor == "core":
            needs += core_objects.TRAIN_PERMISSIONS
        elif training.crd is not None:
            needs += res.TRAIN_PERMISSIONS[training.crd.plural]
        if serving.flavor == "core":
            needs += core_objects.SERVE_PERMISSIONS
        elif serving.crd is not None:
            needs += res.SERVE_PERMISSIONS
        return list(dict.fromkeys(needs))

    def kubeflow_problems(self) -> list[str]:
        """What will not work on the Kubeflow paths chosen: a controller that is not ready (forced
        or not readable), the TrainJob runtime that is not there."""
        problems = []
        for cap, choice in self.choices.items():
            if choice.flavor != "kubeflow" or choice.crd is None:
                continue
            controller = flavors.CONTROLLERS[choice.crd]
            state = self.controllers.get(controller, "not found")
            if state != "ready" and not self.controllers_unreadable:
                problems.append(f"{cap}: {choice.crd.name} is served but {controller} is {state}: "
                                f"nothing would reconcile it (--flavor core runs on plain Kubernetes)")
            if choice.crd == res.TRAINJOB:
                problems += self._runtime_problem()
        return problems

    def _runtime_problem(self) -> list[str]:
        from kubernetes.client.rest import ApiException

        name = "torch-distributed"
        try:
            self.custom_api().get_cluster_custom_object("trainer.kubeflow.org", "v1alpha1",
                                                        "clustertrainingruntimes", name,
                                                        _request_timeout=self.cluster.timeout_s)
        except ApiException as exc:
            what = "is not installed" if exc.status == 404 else f"could not be read (HTTP {exc.status})"
            return [f"training: the ClusterTrainingRuntime {name!r} that TrainJobs run on {what}"]
        return []

    def _flavor_summary(self) -> str:
        """One word for the results and the progress line: core, kubeflow, or mixed."""
        chosen = set(self.flavors.values())
        return chosen.pop() if len(chosen) == 1 else "mixed"

    def missing(self, required: list[str]) -> list[str]:
        lacking = []
        for cap in required:
            if cap in self.capabilities:
                continue
            if cap == "pipelines":
                lacking.append(f"pipelines (Kubeflow Pipelines API {self.kfp})")
            elif cap in self.choices:
                lacking.append(f"{cap} ({self.choices[cap].why})")
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
        user = self.kfp_user()
        if user:
            cluster_env["MINIKF_KFP_USER"] = user
        # SIGTERM if minikf dies: the driver then terminates the run on the cluster first
        return resources.spawn(driver, log_path, env={**os.environ, **env, **cluster_env},
                               death_signal=signal.SIGTERM)

    # -- hooks the journey's steps call ----------------------------------------------------------
    def custom_api(self):
        from kubernetes import client

        return client.CustomObjectsApi(self.cluster.api_client)

    def core_api(self):
        from kubernetes import client

        return client.CoreV1Api(self.cluster.api_client)

    def labels(self, run: str) -> dict[str, str]:
        return {"app.kubernetes.io/managed-by": "minikf", "minikf.dev/run": run}

    def note_leftovers(self, resources, labels: dict[str, str]) -> None:
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
        """The objects a killed run created (ConfigMaps, Secrets, Services, Jobs, Deployments,
        PyTorchJobs, TrainJobs, InferenceServices), by the labels it noted; their pods go with
        them (owner references)."""
        from kubernetes import client

        cluster = connect(details.get("kubeconfig"), details.get("context"))
        namespace, lines = details["namespace"], []
        core, custom = client.CoreV1Api(cluster.api_client), client.CustomObjectsApi(cluster.api_client)
        batch, apps = client.BatchV1Api(cluster.api_client), client.AppsV1Api(cluster.api_client)
        background = {"propagation_policy": "Background"}
        kinds = [("Job", batch.list_namespaced_job, batch.delete_namespaced_job, background),
                 ("Deployment", apps.list_namespaced_deployment, apps.delete_namespaced_deployment,
                  background),
                 ("Service", core.list_namespaced_service, core.delete_namespaced_service, {}),
                 ("ConfigMap", core.list_namespaced_config_map, core.delete_namespaced_config_map, {}),
                 ("Secret", core.list_namespaced_secret, core.delete_namespaced_secret, {})]
        for crd in flavors.CONTROLLERS:
            kinds.append((crd.plural, *_custom_calls(custom, crd), {}))
        try:
            for selector in details.get("selectors", []):
                for kind, lister, deleter, options in kinds:
                    lines += _delete_matching(kind, lister, deleter, options, namespace, selector)
        finally:
            cluster.close()
        return lines

    def delete_later(self, resources, what: str, delete) -> None:
        """Delete on cleanup; a resource already gone is fine, any other failure is reported."""
        from kubernetes.client.rest import ApiException

        def callback() -> None:
            try:
                delete()
            except ApiException as exc:
                if exc.status != 404:
                    raise RuntimeError(f"deleting {what}: HTTP {exc.status} {exc.reason}") from None

        resources.on_cleanup(callback)

    def api(self, what: str, call, *args, **kwargs) -> Any:
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

    def create_configmap(self, obj: dict, resources) -> None:
        name = obj["metadata"]["name"]
        self.api(f"create ConfigMap {name}", self.core_api().create_namespaced_config_map,
                  self.namespace, obj)
        self.delete_later(resources, f"ConfigMap {name}",
                           lambda: self.core_api().delete_namespaced_config_map(name, self.namespace))

    def data_source(self, request: TrainRequest, resources) -> tuple[str, list[str]]:
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
                                        self.labels(request.name))
        except res.InvalidResource as exc:
            raise ClusterStepFailed(str(exc)) from None
        for obj in objs:
            self.create_configmap(obj, resources)
        return res.DATA_MOUNT, [o["metadata"]["name"] for o in objs]

    def plan_workers(self, request: TrainRequest) -> WorkerPlan:
        """As asked; `auto` is CLUSTER_AUTO_WORKERS."""
        if request.workers is not None:
            return WorkerPlan(request.workers, request.workers,
                              f"{request.workers} as asked; the cluster schedules them")
        return WorkerPlan(CLUSTER_AUTO_WORKERS, None, f"{CLUSTER_AUTO_WORKERS} (auto on a cluster: "
                          "rank 0 and one more; the cluster schedules them)")

    def run_training(self, request: TrainRequest, resources: RunResources,
                     status: StatusHook = no_status) -> None:
        """One job of `request.workers` pods, in this cluster's training flavor; model/ and
        metrics.jsonl come back into `request.out` from the rank-0 log."""
        from minikf.platforms.kubernetes import core, kubeflow

        run = core.run_training if self.flavors["training"] == "core" else kubeflow.run_training
        run(self, request, resources, status)

    def serve_model(self, request: ServeRequest, resources: RunResources,
                    status: StatusHook = no_status) -> str:
        """The model served in this cluster's serving flavor; a local URL (a port-forward whose
        tunnel has answered /v2/health/ready with the token)."""
        from minikf.platforms.kubernetes import core, kubeflow

        serve = core.serve_model if self.flavors["serving"] == "core" else kubeflow.serve_model
        return serve(self, request, resources, status)

    # -- what both flavors use ------------------------------------------------------------------
    def pods_summary(self, selector: str) -> str:
        """Each pod's phase and, for a container that is waiting or terminated, the reason:
        what a user needs when a job or server never comes up (ErrImagePull, Pending, ...)."""
        return self._pods_state(selector)[0]

    def _pods_state(self, selector: str) -> tuple[str, bool]:
        """(pods_summary, whether a container waits on an image the node cannot get)."""
        try:
            pods = self.api("list pods", self.core_api().list_namespaced_pod, self.namespace,
                            label_selector=selector)
        except ClusterStepFailed as exc:
            return f"pods not listed: {exc}", False
        if not pods.items:
            return f"no pods ({selector}) were created", False
        parts, unpullable = [], False
        for pod in pods.items:
            phase = (pod.status.phase if pod.status else None) or "Unknown"
            reasons = []
            for cs in (pod.status.container_statuses if pod.status else None) or []:
                state = cs.state
                detail = (state.waiting if state and state.waiting else
                          state.terminated if state and state.terminated else None)
                if detail is not None and detail.reason:
                    unpullable |= detail.reason in UNPULLABLE
                    reasons.append(f"{cs.name}: {detail.reason}" +
                                   (f" ({detail.message.splitlines()[0]})" if detail.message else ""))
            parts.append(f"{pod.metadata.name} {phase}" + (f" [{'; '.join(reasons)}]" if reasons else ""))
        return "pods: " + ", ".join(parts), unpullable

    def wait_for(self, what: str, poll: Callable[[], tuple[bool, str]], timeout_s: float,
                 pods_selector: str, status: StatusHook, progress: str) -> None:
        """Poll until `poll()` says done, within the step's budget (wait_budget_s); past it, a
        ClusterStepFailed naming `what`, the last reason and every pod's state."""
        budget = wait_budget_s(timeout_s)
        deadline = time.monotonic() + budget
        while True:
            done, why = poll()
            if done:
                return
            summary, unpullable = self._pods_state(pods_selector)
            if unpullable:  # it will not start by waiting: say so now, not at the timeout
                raise ClusterStepFailed(f"{what} cannot start: the node cannot get an image (load it "
                                        f"with `minikf images load`, or pin a tag a registry has); {summary}")
            if time.monotonic() > deadline:
                detail = f": {why}" if why else ""
                raise ClusterStepFailed(f"{what} not done after {budget:g}s{detail}; {summary}")
            status(f"{what}: {why or progress}")
            time.sleep(POLL_S)

    def pod_log(self, selector: str, what: str) -> str:
        """The log of the first pod matching `selector` (raw: the client would json-decode a log
        that happens to be one JSON document)."""
        core = self.core_api()
        pods = self.api("list pods", core.list_namespaced_pod, self.namespace, label_selector=selector)
        if not pods.items:
            raise ClusterStepFailed(f"no pod of {what} ({selector})")
        name = pods.items[0].metadata.name
        response = self.api(f"read log of pod {name}", core.read_namespaced_pod_log, name,
                             self.namespace, _preload_content=False)
        return response.data.decode(errors="replace")

    def bring_back(self, what: str, log: str, succeeded: bool, message: str,
                   request: TrainRequest) -> None:
        """Keep the rank-0 log (without the model archive) as the step's log; unpack model/ and
        metrics.jsonl from it into `request.out`, or fail with the log's tail."""
        Path(request.log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(request.log_path).write_text(res.without_archive(log))
        if not succeeded:
            tail = "\n".join(log.strip().splitlines()[-5:])
            raise ClusterStepFailed(f"{what} failed: {message}; rank-0 log tail:\n{tail}")
        try:
            res.unpack_from_log(log, request.out)
        except ValueError as exc:
            raise ClusterStepFailed(f"{what} succeeded but {exc} (log: {request.log_path})") from None

    def serving_inputs(self, request: ServeRequest, resources: RunResources,
                       permissions: list) -> tuple[str, dict[str, str], str, list[str]]:
        """What either flavor's server needs before its own object: the verbs checked, the run's
        labels noted for the reaper, the token Secret and the model ConfigMaps. (name, labels,
        Secret name, ConfigMap names)."""
        require_permissions(self.cluster, self.namespace, res.COMMON_PERMISSIONS + permissions)
        labels = self.labels(request.name)
        self.note_leftovers(resources, labels)
        secret = self.token_secret(request, labels, resources)
        models = self.model_configmaps(request, labels, resources)
        return res.dns_name(request.name, limit=45), labels, secret, models

    def token_secret(self, request: ServeRequest, labels: dict, resources: RunResources) -> str:
        """The serving token as a Secret (deleted at cleanup); its name."""
        secret = res.token_secret(res.dns_name(request.name, "token"), self.namespace, request.token, labels)
        name, core = secret["metadata"]["name"], self.core_api()
        self.api("create the serving token Secret", core.create_namespaced_secret, self.namespace, secret)
        self.delete_later(resources, f"Secret {name}",
                          lambda: core.delete_namespaced_secret(name, self.namespace))
        return name

    def model_configmaps(self, request: ServeRequest, labels: dict, resources: RunResources) -> list[str]:
        """The model's files as ConfigMaps (deleted at cleanup); their names."""
        try:
            objs = res.files_configmaps(res.dns_name(request.name, "model"), self.namespace,
                                        request.model_dir, labels)
        except res.InvalidResource as exc:
            raise ClusterStepFailed(str(exc)) from None
        for obj in objs:
            self.create_configmap(obj, resources)
        return [o["metadata"]["name"] for o in objs]

    def running_pod(self, selector: str, what: str) -> str:
        """The name of a Running pod matching `selector`, or why there is none."""
        pods = self.api("list pods", self.core_api().list_namespaced_pod, self.namespace,
                        label_selector=selector)
        running = [p for p in pods.items if (p.status and p.status.phase) == "Running"
                   and not p.metadata.deletion_timestamp]
        if not running:
            raise ClusterStepFailed(f"{what} is ready but no pod of it is Running; "
                                    f"{self.pods_summary(selector)}")
        return running[0].metadata.name

    def forward_and_check(self, pod: str, what: str, token: str, timeout_s: float,
                          resources: RunResources) -> str:
        """A port-forward to the model server in `pod`, tested end to end: /v2/health/ready
        through the tunnel, with the token, must answer 200. The port-forward's own errors from
        the API server are what the user sees when it does not."""
        import requests

        from minikf.kube.portforward import PortForward

        forward = PortForward(self.cluster.api_client, self.namespace, pod, res.MODEL_PORT)
        resources.on_cleanup(forward.close)
        url = forward.start()
        deadline = time.monotonic() + max(10.0, min(60.0, timeout_s))
        last = ""
        while time.monotonic() < deadline:
            try:
                answer = requests.get(f"{url}/v2/health/ready", timeout=5,
                                      headers={"Authorization": f"Bearer {token}"})
                if answer.status_code == 200:
                    return url
                last = f"HTTP {answer.status_code} {answer.text[:200]}"
            except requests.RequestException as exc:
                last = forward.errors[-1] if forward.errors else type(exc).__name__
            time.sleep(0.5)
        raise ClusterStepFailed(f"{what}: the port-forward to pod {pod} port {res.MODEL_PORT} does not "
                                f"reach the model server: {last}")

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.close()


def _delete_matching(kind: str, lister, deleter, options: dict, namespace: str,
                     selector: str) -> list[str]:
    """Delete every `kind` matching `selector`; one line per object removed or not removed."""
    from kubernetes.client.rest import ApiException

    try:
        found = lister(namespace, label_selector=selector, _request_timeout=30)
    except ApiException as exc:
        # 404: the CRD is not on this cluster
        return [] if exc.status == 404 else [f"could not list {kind} ({selector}): HTTP {exc.status}"]
    lines = []
    for item in found["items"] if isinstance(found, dict) else found.items:
        meta = item["metadata"] if isinstance(item, dict) else item.metadata.to_dict()
        try:
            deleter(meta["name"], namespace, _request_timeout=30, **options)
            lines.append(f"removed {kind} {meta['name']} in namespace {namespace}")
        except ApiException as exc:
            if exc.status != 404:
                lines.append(f"could not remove {kind} {meta['name']}: HTTP {exc.status}")
    return lines


def _custom_calls(custom, crd):
    """List and delete calls for one custom resource, shaped like the core ones."""
    def lister(namespace, **kwargs):
        return custom.list_namespaced_custom_object(crd.group, crd.version, namespace, crd.plural,
                                                    **kwargs)

    def deleter(name, namespace, **kwargs):
        return custom.delete_namespaced_custom_object(crd.group, crd.version, namespace,
                                                      crd.plural, name, **kwargs)

    return lister, deleter
