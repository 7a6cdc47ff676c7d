"""Kubeflow Pipelines definitions (kfp DSL) of the journeys, runnable locally or compiled to IR."""

PIPELINES = {
    "fashion-mnist": "minikf.pipelines.fashion_mnist:fashion_mnist_pipeline",
}
