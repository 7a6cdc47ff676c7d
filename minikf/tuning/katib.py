"""The tuning spec as a Katib Experiment (kubeflow.org/v1beta1), for the kubernetes platform.

Same objective, budget, parallelism, median stopping and search space as the local Optuna
search; each trial is a Job running minikf.tuning.katib_trial in the minikf runtime image,
whose `accuracy=` / `loss=` lines Katib's StdOut collector reads (Katib injects that collector
only in namespaces labelled katib.kubeflow.org/metrics-collector-injection=enabled, as the
appliance's minikf namespace is). The preprocessed data reaches each trial pod as ConfigMaps
(minikf.kube.objects.files_configmaps) projected at the directory `--data` names.
"""

from __future__ import annotations

from minikf.kube.objects import DATA_MOUNT, PULL_POLICY, check_openapi, projected_volume
from minikf.tuning.spec import TuningSpec

ALGORITHMS = {"tpe": "tpe", "random": "random"}


def _feasible(p) -> dict:
    if p.type == "categorical":
        return {"list": [str(v) for v in p.values]}
    space = {"min": f"{p.min:g}", "max": f"{p.max:g}"}
    if p.step:
        space["step"] = f"{p.step:g}"
    if p.log:
        space["distribution"] = "logUniform"
    return space


def experiment(spec: TuningSpec, name: str, namespace: str, image: str, data_configmaps: list[str],
               data_dir: str = DATA_MOUNT) -> dict:
    """A Katib Experiment manifest; the trial pod sees train/test.npz from `data_configmaps` at
    `data_dir` (a `--data` without a volume behind it would find nothing there)."""
    if not data_configmaps:
        raise ValueError("a Katib trial needs the ConfigMaps holding its data")
    names = [p.name for p in spec.parameters]
    fixed = {"lr": "0.002", "batch_size": "32", "epochs": "1"}
    value = {n: f"${{trialParameters.{n}}}" if n in names else fixed[n] for n in fixed}
    command = ["python", "-m", "minikf.tuning.katib_trial", "--data", data_dir, "--out",
               "/tmp/trial", "--epochs", value["epochs"], "--batch-size", value["batch_size"],
               "--lr", value["lr"]]
    trial_pod = {"restartPolicy": "Never", "containers": [{
        "name": "training-container", "image": image, "imagePullPolicy": PULL_POLICY, "command": command,
        "volumeMounts": [{"name": "data", "mountPath": data_dir, "readOnly": True}]}],
        "volumes": [projected_volume("data", data_configmaps)]}
    check_openapi(trial_pod, "V1PodSpec")
    body: dict = {
        "objective": {"type": spec.objective.type,
                      "objectiveMetricName": spec.objective.metric,
                      "additionalMetricNames": [m for m in ("accuracy", "loss")
                                                if m != spec.objective.metric]},
        "algorithm": {"algorithmName": ALGORITHMS[spec.algorithm],
                      "algorithmSettings": [{"name": "random_state", "value": str(spec.seed)}]},
        "parallelTrialCount": spec.parallel_trials,
        "maxTrialCount": spec.max_trials,
        "maxFailedTrialCount": spec.max_failed_trials,
        "parameters": [{"name": p.name, "parameterType": p.type, "feasibleSpace": _feasible(p)}
                       for p in spec.parameters],
        "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
        "trialTemplate": {
            "primaryContainerName": "training-container",
            "trialParameters": [{"name": n, "reference": n} for n in names],
            "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
                "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                "spec": trial_pod,
            }}},
        },
    }
    if spec.objective.goal is not None:
        body["objective"]["goal"] = spec.objective.goal
    if spec.early_stopping.algorithm == "median":
        body["earlyStopping"] = {"algorithmName": "medianstop", "algorithmSettings": [
            {"name": "min_trials_required", "value": str(spec.early_stopping.min_trials_required)},
            {"name": "start_step", "value": str(spec.early_stopping.start_step)}]}
    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
            "metadata": {"name": name, "namespace": namespace}, "spec": body}
