#!/usr/bin/env bash
# The docker platform: Debian's docker.io and debootstrap, a running dockerd, and
# the images (`minikf images build`: a debootstrapped bookworm base, then deps, runtime and
# server). Idempotent: a second run finds the engine up and every image's content tag built.
set -euo pipefail

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "20-docker: not root on Debian; the docker tests skip with the reason"
  exit 0
fi

missing=""
command -v dockerd >/dev/null || missing="$missing docker.io"
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing="$missing debootstrap"
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086  # one package per word
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  echo "20-docker: installed$missing"
fi

if ! docker info >/dev/null 2>&1; then
  log=/var/log/minikf-dockerd.log
  setsid dockerd >"$log" 2>&1 < /dev/null &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    echo "20-docker: dockerd did not start (see $log); the docker tests skip with the reason"
    tail -5 "$log" || true
    exit 0
  fi
fi
echo "20-docker: Docker Engine $(docker version --format '{{.Server.Version}}')"

start=$(date +%s)
python3 -m minikf.cli images build
echo "20-docker: images ready in $(( $(date +%s) - start ))s"
