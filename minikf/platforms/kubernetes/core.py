"""The core flavor: the journey on plain Kubernetes, for clusters without Kubeflow.

Training: an Indexed Job of `workers` pods, a headless Service for them and a Service that routes
the rendezvous port to rank 0 (its ClusterIP is MASTER_ADDR, so no cluster DNS is needed). The
platform labels the index-0 pod as soon as it exists, which is what that Service selects; the
Job's own controller (a part of every cluster) makes the pods and fails the Job when a rank dies.
Serving: a Deployment + Service of minikf's server image, the token from a Secret, reached
through a port-forward that is tested end to end. Objects are built in minikf/kube/core.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from minikf.kube import core as objs
from minikf.kube import objects as res
from minikf.kube.client import require_permissions
from minikf.platforms.base import ServeRequest, StatusHook, TrainRequest
from minikf.platforms.kubernetes.kubeflow import job_entry_argv, workers_of
from minikf.runtime.processes import RunResources

if TYPE_CHECKING:
    from minikf.platforms.kubernetes.platform import KubernetesPlatform


def _create_service(platform: KubernetesPlatform, obj: dict, resources: RunResources) -> dict:
    core, name = platform.core_api(), obj["metadata"]["name"]
    created = platform.api(f"create Service {name}", core.create_namespaced_service,
                           platform.namespace, obj)
    platform.delete_later(resources, f"Service {name}",
                          lambda: core.delete_namespaced_service(name, platform.namespace))
    return created


def run_training(platform: KubernetesPlatform, request: TrainRequest, resources: RunResources,
                 status: StatusHook) -> None:
    """The Indexed Job, waited on through its conditions; rank 0's log brings the model back."""
    from kubernetes import client

    from minikf.platforms.kubernetes.platform import ClusterStepFailed, wait_budget_s

    require_permissions(platform.cluster, platform.namespace,
                        res.COMMON_PERMISSIONS + objs.TRAIN_PERMISSIONS)
    labels = platform.labels(request.name)
    platform.note_leftovers(resources, labels)
    name = res.dns_name(request.name, limit=50)  # + "-rank0" stays a valid Service name
    mirrors, configmaps = platform.data_source(request, resources)
    _create_service(platform, objs.headless_service(name, platform.namespace, labels), resources)
    rank0 = _create_service(platform, objs.rank0_service(name, platform.namespace, labels), resources)
    spec = res.TrainSpec(name=name, namespace=platform.namespace, workers=workers_of(request),
                         argv=job_entry_argv(request, mirrors), image=platform.image,
                         data_configmaps=configmaps, labels=labels)
    job = objs.indexed_job(spec, master_addr=rank0.spec.cluster_ip, subdomain=name,
                           deadline_s=int(wait_budget_s(request.timeout_s)) + 5)
    batch, core = client.BatchV1Api(platform.cluster.api_client), platform.core_api()
    what = f"Job {name}"
    platform.api(f"create {what}", batch.create_namespaced_job, platform.namespace, job)
    # background: the Job's pods go with it (the API's default for Jobs is to orphan them)
    platform.delete_later(resources, what, lambda: batch.delete_namespaced_job(
        name, platform.namespace, propagation_policy="Background"))
    selector = f"{objs.JOB_NAME_LABEL}={name}"
    state: dict = {"labelled": False}

    def poll() -> tuple[bool, str]:
        if not state["labelled"]:
            state["labelled"] = _label_rank0(platform, core, selector)
        current = platform.api(f"get {what}", batch.read_namespaced_job, name, platform.namespace)
        state["finished"], state["succeeded"], state["message"] = objs.job_state(
            client.ApiClient().sanitize_for_serialization(current))
        if state["finished"]:
            return True, ""
        return False, "" if state["labelled"] else "waiting for the rank-0 pod"

    platform.wait_for(what, poll, request.timeout_s, selector, status,
                      f"running ({workers_of(request)} workers)")
    try:
        log = platform.pod_log(f"{selector},{objs.RANK_LABEL}=0", f"rank 0 of {what}")
    except ClusterStepFailed as exc:
        if state["succeeded"]:
            raise
        raise ClusterStepFailed(f"{what} failed: {state['message']}; "
                                f"{platform.pods_summary(selector)} ({exc})") from None
    platform.bring_back(what, log, state["succeeded"], state["message"] +
                        ("" if state["succeeded"] else f"; {platform.pods_summary(selector)}"), request)


def _label_rank0(platform: KubernetesPlatform, core, selector: str) -> bool:
    """Label the pod whose completion index is 0 (Kubernetes 1.24 labels no pod by index; 1.28
    does, but the annotation is on every version); True once done."""
    pods = platform.api("list pods", core.list_namespaced_pod, platform.namespace, label_selector=selector)
    for pod in pods.items:
        if (pod.metadata.annotations or {}).get(objs.INDEX_ANNOTATION) == "0":
            platform.api(f"label pod {pod.metadata.name} as rank 0", core.patch_namespaced_pod,
                         pod.metadata.name, platform.namespace,
                         {"metadata": {"labels": {objs.RANK_LABEL: "0"}}})
            return True
    return False


def serve_model(platform: KubernetesPlatform, request: ServeRequest, resources: RunResources,
                status: StatusHook) -> str:
    """A Deployment + Service of the server image; a local URL whose tunnel has answered."""
    from kubernetes import client

    name, labels, secret, models = platform.serving_inputs(request, resources, objs.SERVE_PERMISSIONS)
    apps = client.AppsV1Api(platform.cluster.api_client)
    obj = objs.deployment(name, platform.namespace, models, secret, image=platform.server_image,
                          labels=labels)
    what = f"Deployment {name}"
    platform.api(f"create {what}", apps.create_namespaced_deployment, platform.namespace, obj)
    platform.delete_later(resources, what, lambda: apps.delete_namespaced_deployment(
        name, platform.namespace, propagation_policy="Background"))
    _create_service(platform, objs.model_service(name, platform.namespace, labels), resources)

    def poll() -> tuple[bool, str]:
        current = platform.api(f"get {what}", apps.read_namespaced_deployment, name, platform.namespace)
        return objs.deployment_ready(client.ApiClient().sanitize_for_serialization(current))

    selector = f"{objs.APP_LABEL}={name}"
    platform.wait_for(what, poll, request.timeout_s, selector, status, "no ready replica yet")
    pod = platform.running_pod(selector, what)
    return platform.forward_and_check(pod, what, request.token, request.timeout_s, resources)
