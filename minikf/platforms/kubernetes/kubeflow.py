"""The kubeflow flavor: training as a PyTorchJob or TrainJob, serving as a KServe InferenceService.

The operators make the pods (with their labels and the MASTER_ADDR/WORLD_SIZE/RANK or PET_* env)
and write the status conditions this module waits on; the model comes back from the rank-0 pod's
log, the served model is reached through a port-forward to the predictor pod.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from minikf.kube import objects as res
from minikf.kube.client import require_permissions
from minikf.platforms.base import ServeRequest, StatusHook, TrainRequest
from minikf.runtime.processes import RunResources
from minikf.workload.contract import recipe_flags

if TYPE_CHECKING:
    from minikf.platforms.kubernetes.platform import KubernetesPlatform


def _no_pods_hint(component: str) -> str:
    return (f" (a {component} that runs would have created them: is its controller running? "
            f"`minikf kube check` says; --flavor core runs on plain Kubernetes)")


def run_training(platform: KubernetesPlatform, request: TrainRequest, resources: RunResources,
                 status: StatusHook) -> None:
    """A PyTorchJob (or TrainJob) of `request.workers` pods, waited on through its conditions."""
    from minikf.platforms.kubernetes.platform import ClusterStepFailed

    crd = res.PYTORCHJOB if platform.train_kind == "PyTorchJob" else res.TRAINJOB
    require_permissions(platform.cluster, platform.namespace,
                        res.COMMON_PERMISSIONS + res.TRAIN_PERMISSIONS[crd.plural])
    labels = platform.labels(request.name)
    platform.note_leftovers(resources, labels)
    mirrors, configmaps = platform.data_source(request, resources)
    spec = res.TrainSpec(name=res.dns_name(request.name), namespace=platform.namespace,
                         workers=workers_of(request), argv=job_entry_argv(request, mirrors),
                         image=platform.image, data_configmaps=configmaps, labels=labels)
    try:
        obj = (res.pytorchjob(spec) if crd == res.PYTORCHJOB
               else res.trainjob(spec, trainer_version=platform.trainer_version()))
    except res.InvalidResource as exc:  # a Trainer release without the TrainJob API
        raise ClusterStepFailed(str(exc)) from None
    custom = platform.custom_api()
    what = f"{platform.train_kind} {spec.name}"
    platform.api(f"create {what}", custom.create_namespaced_custom_object,
                 crd.group, crd.version, platform.namespace, crd.plural, obj)
    platform.delete_later(resources, what, lambda: custom.delete_namespaced_custom_object(
        crd.group, crd.version, platform.namespace, crd.plural, spec.name))
    state: dict = {}

    def poll() -> tuple[bool, str]:
        current = platform.api(f"get {what}", custom.get_namespaced_custom_object,
                               crd.group, crd.version, platform.namespace, crd.plural, spec.name)
        state["finished"], state["succeeded"], state["message"] = res.job_finished(current)
        return state["finished"], ""

    selector = res.job_pods_selector(platform.train_kind, spec.name)
    try:
        platform.wait_for(what, poll, request.timeout_s, selector, status,
                          f"running ({workers_of(request)} workers)")
    except ClusterStepFailed as exc:
        if "no pods" in str(exc):
            raise ClusterStepFailed(f"{exc}{_no_pods_hint(crd.component)}") from None
        if crd == res.TRAINJOB and res.always_pulled(spec.image) and "ImagePull" in str(exc):
            raise ClusterStepFailed(f"{exc} (a TrainJob cannot set imagePullPolicy, so Kubernetes "
                                    f"always pulls {spec.image}: give the image a tag other than "
                                    f"latest, e.g. MINIKF_RUNTIME_IMAGE=<image>:<tag>)") from None
        raise
    try:
        log = platform.pod_log(res.rank0_selector(platform.train_kind, spec.name), f"rank 0 of {what}")
    except ClusterStepFailed as exc:
        if state["succeeded"]:
            raise
        raise ClusterStepFailed(f"{what} failed: {state['message']} ({exc})") from None
    platform.bring_back(what, log, state["succeeded"], state["message"], request)


def workers_of(request: TrainRequest) -> int:
    """The job's size: as asked, or the cluster's `auto` (see KubernetesPlatform.plan_workers)."""
    from minikf.platforms.kubernetes.platform import CLUSTER_AUTO_WORKERS

    return request.workers or CLUSTER_AUTO_WORKERS


def job_entry_argv(request: TrainRequest, mirrors: str) -> list[str]:
    """What every training pod runs: fetch the data, train, hand the model back in the log."""
    argv = ["python3", "-m", "minikf.kube.job_entry", "--mirrors", mirrors,
            "--epochs", str(request.epochs), "--batch-size", str(request.batch_size),
            "--lr", str(request.lr)]
    if request.sample:
        argv.append("--sample")
    return argv + recipe_flags(request.schedule, request.augment)


def serve_model(platform: KubernetesPlatform, request: ServeRequest, resources: RunResources,
                status: StatusHook) -> str:
    """An InferenceService (RawDeployment) running minikf's model server; a checked local URL."""
    from minikf.platforms.kubernetes.platform import ClusterStepFailed

    isvc_name, labels, secret, models = platform.serving_inputs(request, resources, res.SERVE_PERMISSIONS)
    obj = res.inference_service(res.ServeSpec(
        name=isvc_name, namespace=platform.namespace, model_configmaps=models, token_secret=secret,
        image=platform.image, labels=labels))
    crd, custom = res.INFERENCESERVICE, platform.custom_api()
    what = f"InferenceService {isvc_name}"
    platform.api(f"create {what}", custom.create_namespaced_custom_object,
                 crd.group, crd.version, platform.namespace, crd.plural, obj)
    platform.delete_later(resources, what, lambda: custom.delete_namespaced_custom_object(
        crd.group, crd.version, platform.namespace, crd.plural, isvc_name))

    def poll() -> tuple[bool, str]:
        current = platform.api(f"get {what}", custom.get_namespaced_custom_object,
                               crd.group, crd.version, platform.namespace, crd.plural, isvc_name)
        return res.service_ready(current)

    selector = res.predictor_selector(isvc_name)
    try:
        platform.wait_for(what, poll, request.timeout_s, selector, status, "not ready")
    except ClusterStepFailed as exc:
        if "no pods" in str(exc):
            raise ClusterStepFailed(f"{exc}{_no_pods_hint(crd.component)}") from None
        raise
    pod = platform.running_pod(selector, what)
    return platform.forward_and_check(pod, what, request.token, request.timeout_s, resources)
