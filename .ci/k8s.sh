#!/usr/bin/env bash
# The journeys on the real cluster that .ci/setup.d/40-k8s.sh brought up: `minikf kube check`,
# the fashion-mnist journey (and the data journey) with --platform kubernetes on the core flavor,
# the tests marked `kube` (the kubeflow flavor against the real API server with stand-in
# controllers), then proof that nothing of the runs is left. Clients run inside the cluster's
# network namespace (`cluster.sh exec`). .ci/run's trap takes the cluster down.
set -euo pipefail
cd "$(dirname "$0")/.."
K8S=../shared/k8s/cluster.sh
if ! bash "$K8S" status >/dev/null 2>&1; then
  echo "k8s: the cluster is not up (see 40-k8s.sh's line above); nothing run"
  exit 0
fi
KC=$(bash "$K8S" kubeconfig)
NS=minikf-ci
in_cluster() { bash "$K8S" exec "$@"; }
kubectl_() { in_cluster kubectl --kubeconfig "$KC" "$@"; }

kubectl_ create namespace "$NS" --dry-run=client -o yaml | kubectl_ apply -f - >/dev/null
in_cluster python3 -m minikf.cli kube check --kubeconfig "$KC" --namespace "$NS"
for scenario in fashion-mnist fashion-mnist-data; do
  start=$(date +%s)
  in_cluster python3 -m minikf.cli run "$scenario" --platform kubernetes --kubeconfig "$KC" \
    --namespace "$NS" --results "results/ci/kubernetes/$scenario" --quiet
  echo "k8s: $scenario passed on the cluster in $(( $(date +%s) - start )) s"
done
in_cluster python3 -m pytest -m kube tests -q -p no:cacheprovider

# Nothing left: every object a run labels, and their pods (deleted in the background).
left=""
for _ in $(seq 60); do
  left=$(kubectl_ get pods,jobs,deployments,services,configmaps,secrets -A \
    -l app.kubernetes.io/managed-by=minikf -o name 2>/dev/null || true)
  [ -z "$left" ] && break
  sleep 1
done
if [ -n "$left" ]; then
  echo "k8s: left on the cluster after the runs:"; echo "$left"; exit 1
fi
if pgrep -f "minikf.cli run .*--platform kubernetes" >/dev/null; then
  echo "k8s: a minikf run (and its port-forwards) is still running"; exit 1
fi
kubectl_ delete namespace "$NS" --wait=false >/dev/null
echo "k8s: nothing of the runs is left on the cluster"
