#!/usr/bin/env bash
# Appliance checks' tools: vagrant (+ vagrant-libvirt, so `vagrant validate` checks the
# libvirt provider block too), shellcheck, and kubectl for `kubectl kustomize` when none is on PATH
# (Debian's kubernetes-client is kubectl 1.20 with kustomize v2: enough for the offline overlays).
# Idempotent and quick when everything is there already.
set -euo pipefail

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "30-appliance: not root on Debian; the appliance tests skip what is missing"
  exit 0
fi

wanted="vagrant vagrant-libvirt shellcheck"
command -v kubectl >/dev/null || wanted="$wanted kubernetes-client"

missing=""
for pkg in $wanted; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -z "$missing" ]; then
  echo "30-appliance: all present ($wanted)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086  # one package per word
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "30-appliance: installed$missing"
