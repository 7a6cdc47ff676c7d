"""Kubeflow Pipelines definitions (kfp DSL) of the journeys, runnable locally or compiled to IR."""

PIPELINES = {
    "fashion-mnist": "minikf.pipelines.fashion_mnist:fashion_mnist_pipeline",
    # The KFP basic sample set (minikf/pipelines/basics.py).
    "basics-sequential": "minikf.pipelines.basics:sequential",
    "basics-parallel-join": "minikf.pipelines.basics:parallel_join",
    "basics-condition": "minikf.pipelines.basics:condition",
    "basics-exit-handler": "minikf.pipelines.basics:exit_handler",
    "basics-immediate": "minikf.pipelines.basics:immediate",
    "basics-parallel-for": "minikf.pipelines.basics:parallel_for",
    "basics-raises": "minikf.pipelines.basics:raises",
    # The task contract every runner keeps (minikf/pipelines/contract.py).
    "contract-probe": "minikf.pipelines.contract:task_contract",
    "contract-exit": "minikf.pipelines.contract:exit_contract",
}
