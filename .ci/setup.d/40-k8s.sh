#!/usr/bin/env bash
# The kubernetes platform on a real cluster: ../shared/k8s's single-node Kubernetes 1.24 comes up
# with the upstream Kubeflow CRDs and minikf's images loaded into its node (`minikf images load`,
# the same code path `minikf up --driver kind` uses). .ci/k8s.sh then runs the journeys on it and
# .ci/run takes it down in a trap. Skipped, with the reason, where it cannot run.
set -euo pipefail
cd "$(dirname "$0")/../.."
K8S=../shared/k8s/cluster.sh

if [ "$(id -u)" != 0 ] || [ ! -f "$K8S" ]; then
  echo "40-k8s: needs root and $K8S; the kubernetes journeys are skipped"
  exit 0
fi
if ! docker image inspect minikf/runtime:latest minikf/server:latest >/dev/null 2>&1; then
  echo "40-k8s: minikf's images are not built (20-docker.sh); the kubernetes journeys are skipped"
  exit 0
fi
bash "$K8S" up
bash "$K8S" crds
# The runtime image by its content tag too (the same layers, one docker save): a TrainJob cannot set
# imagePullPolicy, so the kube tests run TrainJobs on a tag Kubernetes does not always pull.
# shellcheck disable=SC2046  # one image per word
python3 -m minikf.cli images load --cluster-script "$K8S" minikf/server:latest \
  $(docker image inspect --format '{{join .RepoTags " "}}' minikf/runtime:latest)
