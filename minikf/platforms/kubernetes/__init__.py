"""The kubernetes platform (platform.py) and its two flavors: kubeflow.py (PyTorchJob/TrainJob,
InferenceService) and core.py (an Indexed Job and a Deployment on plain Kubernetes)."""

from minikf.platforms.kubernetes.platform import ClusterStepFailed, KubernetesPlatform

__all__ = ["ClusterStepFailed", "KubernetesPlatform"]
