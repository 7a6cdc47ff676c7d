#!/usr/bin/env bash
# Provision a Debian 12 machine as the minikf appliance, then run the kind path on it.
#
# Stages (MINIKF_STAGES, space-separated, default: all in this order):
#   packages  Docker Engine, Python and the tools the stages below use (Debian packages)
#   sysctl    inotify limits kind needs, in /etc/sysctl.d/99-minikf.conf, applied when allowed
#   datadisk  format (once) and mount the data disk at /srv/minikf-data; Docker's data-root on it
#   binaries  kind and kubectl from MINIKF_BINARY_MIRROR (default: upstream), checksum-verified
#   docker    enable and start Docker, let MINIKF_USER use it
#   minikf    install minikf from MINIKF_SRC into /opt/minikf (a venv)
#   cluster   `minikf up --driver kind` as MINIKF_USER, then print the endpoints
# Idempotent: running it again changes nothing that is already right.
set -euo pipefail

STAGES=${MINIKF_STAGES:-packages sysctl datadisk binaries docker minikf cluster}
KIND_VERSION=${MINIKF_KIND_VERSION:-v0.27.0}
KUBECTL_VERSION=${MINIKF_KUBECTL_VERSION:-v1.32.2}
BINARY_MIRROR=${MINIKF_BINARY_MIRROR:-}
DATA_MOUNT=${MINIKF_DATA_MOUNT:-/srv/minikf-data}
MINIKF_USER=${MINIKF_USER:-vagrant}
MINIKF_SRC=${MINIKF_SRC:-/vagrant}
BIN_DIR=${MINIKF_BIN_DIR:-/usr/local/bin}
PACKAGES="docker.io ca-certificates curl iptables procps e2fsprogs util-linux python3 python3-venv git"

log() { printf '==> minikf provision: %s\n' "$*"; }
warn() { printf '==> minikf provision: WARNING: %s\n' "$*" >&2; }
die() { printf '==> minikf provision: ERROR: %s\n' "$*" >&2; exit 1; }
wants() { case " $STAGES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

[ "$(id -u)" = 0 ] || die "run as root (vagrant runs provisioners as root)"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

stage_packages() {
  local missing=() pkg
  for pkg in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "packages: all present"
    return
  fi
  log "packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

stage_sysctl() {
  local conf=/etc/sysctl.d/99-minikf.conf
  cat > "$conf" <<'CONF'
# minikf: kind's nodes run many pods that watch files; the defaults give "too many open files".
fs.inotify.max_user_watches = 524288
fs.inotify.max_user_instances = 512
CONF
  if sysctl -p "$conf" >/dev/null 2>&1; then
    log "sysctl: applied $conf"
  else
    warn "sysctl: could not apply $conf here (a container?); it applies at the next boot"
  fi
}

find_data_device() {
  local dev
  if [ -n "${MINIKF_DATA_DEVICE:-}" ]; then
    printf '%s\n' "$MINIKF_DATA_DEVICE"
    return
  fi
  for dev in /dev/disk/by-id/*minikf-data* /dev/vdb /dev/sdb; do
    [ -b "$dev" ] || continue
    # Never touch a disk that is mounted or partitioned: only a whole, unused disk is ours.
    if ! lsblk -nro MOUNTPOINT "$dev" 2>/dev/null | grep -q . \
       && [ "$(lsblk -nro NAME "$dev" 2>/dev/null | wc -l)" -le 1 ]; then
      readlink -f "$dev"
      return
    fi
  done
}

stage_datadisk() {
  mkdir -p "$DATA_MOUNT"
  local dev
  dev=$(find_data_device || true)
  if [ -z "$dev" ]; then
    warn "datadisk: no data disk found; using $DATA_MOUNT on the root disk"
  else
    if ! blkid "$dev" >/dev/null 2>&1; then
      log "datadisk: formatting $dev (new disk)"
      mkfs.ext4 -q -L minikf-data "$dev"
    fi
    grep -q 'LABEL=minikf-data' /etc/fstab \
      || printf 'LABEL=minikf-data %s ext4 defaults,nofail 0 2\n' "$DATA_MOUNT" >> /etc/fstab
    mountpoint -q "$DATA_MOUNT" || mount "$DATA_MOUNT"
    log "datadisk: $dev mounted at $DATA_MOUNT"
  fi
  mkdir -p "$DATA_MOUNT/docker" "$DATA_MOUNT/volumes"
  mkdir -p /etc/docker
  if [ ! -f /etc/docker/daemon.json ] || ! grep -q "\"$DATA_MOUNT/docker\"" /etc/docker/daemon.json; then
    printf '{\n  "data-root": "%s/docker"\n}\n' "$DATA_MOUNT" > /etc/docker/daemon.json
    log "datadisk: Docker's data-root is $DATA_MOUNT/docker"
  fi
}

# fetch URL DEST: download with retries; the checksum file URL.sha256 (or .sha256sum) must match.
fetch_verified() {
  local url=$1 dest=$2 tmp="$WORK/download" expected actual
  curl -fsSL --retry 3 -o "$tmp" "$url" || die "download failed: $url"
  expected=$(curl -fsSL --retry 3 "$url.sha256" 2>/dev/null || curl -fsSL --retry 3 "$url.sha256sum" 2>/dev/null) \
    || die "no checksum at $url.sha256 or $url.sha256sum"
  expected=${expected%% *}
  actual=$(sha256sum "$tmp" | cut -d' ' -f1)
  [ "$expected" = "$actual" ] || die "checksum mismatch for $url: expected $expected, got $actual"
  install -m 0755 "$tmp" "$dest"
}

stage_binaries() {
  local arch kind_url kubectl_url
  arch=$(dpkg --print-architecture)
  kind_url=${BINARY_MIRROR:-https://kind.sigs.k8s.io/dl}/$KIND_VERSION/kind-linux-$arch
  kubectl_url=${BINARY_MIRROR:-https://dl.k8s.io/release}/$KUBECTL_VERSION/bin/linux/$arch/kubectl
  if "$BIN_DIR/kind" version 2>/dev/null | grep -q "kind $KIND_VERSION "; then
    log "binaries: kind $KIND_VERSION present"
  else
    log "binaries: kind $KIND_VERSION from $kind_url"
    fetch_verified "$kind_url" "$BIN_DIR/kind"
  fi
  if "$BIN_DIR/kubectl" version --client 2>/dev/null | grep -q "Client Version: $KUBECTL_VERSION"; then
    log "binaries: kubectl $KUBECTL_VERSION present"
  else
    log "binaries: kubectl $KUBECTL_VERSION from $kubectl_url"
    fetch_verified "$kubectl_url" "$BIN_DIR/kubectl"
  fi
}

stage_docker() {
  if id "$MINIKF_USER" >/dev/null 2>&1; then
    getent group docker >/dev/null || groupadd --system docker
    usermod -aG docker "$MINIKF_USER"
  fi
  if [ -d /run/systemd/system ]; then
    systemctl enable docker >/dev/null 2>&1
    systemctl restart docker  # picks up daemon.json's data-root
    log "docker: enabled and running"
  else
    warn "docker: no systemd here (a container?); the service is enabled for the next boot only"
  fi
}

stage_minikf() {
  [ -f "$MINIKF_SRC/pyproject.toml" ] || die "no minikf source at $MINIKF_SRC (set MINIKF_SRC)"
  [ -x /opt/minikf/bin/python ] || python3 -m venv /opt/minikf
  # The appliance commands need only these; the journeys' heavy dependencies (torch, kfp) are not
  # needed to bring the cluster up.
  /opt/minikf/bin/pip install -q --no-deps "$MINIKF_SRC"
  /opt/minikf/bin/pip install -q "typer>=0.12" "pydantic>=2.5" "pyyaml>=6" "rich>=13" "requests>=2.31" \
    "kubernetes>=29" "psutil>=5.9"
  ln -sf /opt/minikf/bin/minikf "$BIN_DIR/minikf"
  log "minikf: $(/opt/minikf/bin/python -c 'import importlib.metadata as m; print(m.version("minikf"))')"
}

stage_cluster() {
  local args=(up --driver kind --listen-address 0.0.0.0 --gateway-port "${MINIKF_GATEWAY_PORT:-8080}"
              --api-port "${MINIKF_API_PORT:-6443}" --data-dir "$DATA_MOUNT/volumes")
  [ -n "${MINIKF_COMPONENTS:-}" ] && args+=(--components "$MINIKF_COMPONENTS")
  [ "${MINIKF_GPUS:-0}" = 1 ] && args+=(--gpus)
  local user_home
  user_home=$(getent passwd "$MINIKF_USER" | cut -d: -f6)
  # runuser sets the user's groups afresh, so the docker membership added above already counts.
  runuser -u "$MINIKF_USER" -- env HOME="$user_home" PATH="$BIN_DIR:/usr/bin:/bin" minikf "${args[@]}"
  log "endpoints (forwarded to 127.0.0.1 on the host):"
  log "  gateway     http://127.0.0.1:${MINIKF_GATEWAY_PORT:-8080}"
  log "  API server  https://127.0.0.1:${MINIKF_API_PORT:-6443} (minikf up --driver vagrant writes the kubeconfig)"
}

for stage in packages sysctl datadisk binaries docker minikf cluster; do
  if wants "$stage"; then
    "stage_$stage"
  fi
done
log "done: $STAGES"
