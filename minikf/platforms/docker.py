"""The docker platform: each workload (training worker, model server, pipeline task) is a
container on the local Docker Engine, from the images minikf builds (images/).

Containers use host networking, so workers meet at MASTER_ADDR=127.0.0.1 exactly as on the
local platform and the model server binds 127.0.0.1 only. The run's work dir is
bind-mounted at the same path, and containers run as the caller's uid:gid so what they
write belongs to the caller. Everything carries the label minikf.run=<run id>: the run's
cleanup removes it, also on failure and Ctrl-C, and `minikf clean` removes what a crashed
run left behind.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from minikf.images import engine
from minikf.images.build import WORKLOAD
from minikf.images.mounts import host_paths, mounts_for, resolve_json_arguments, resolve_paths
from minikf.platforms.base import Platform
from minikf.runtime.errors import MinikfError
from minikf.runtime.processes import ProcessHandle, RunResources, kill_process_group
from minikf.workload.contract import SERVER_MODULE

RUNTIME = "minikf/runtime:latest"
SERVER = "minikf/server:latest"


def _run_id(resources) -> str:
    """The run's id (Resources.run_id); a fresh one for a Resources made outside the engine."""
    run_id = getattr(resources, "run_id", "") or ""
    if not run_id:
        run_id = getattr(resources, "_docker_run_id", "") or uuid.uuid4().hex[:12]
        resources._docker_run_id = run_id
    return run_id


@dataclass
class ContainerHandle:
    """A container that looks like a subprocess.Popen to the steps: poll(), wait(), returncode."""

    container: object
    log_path: Path
    returncode: int | None = None
    _logger: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._logger = threading.Thread(target=self._copy_logs, daemon=True)
        self._logger.start()

    @property
    def pid(self) -> str:
        return self.container.short_id

    def _copy_logs(self) -> None:
        import docker

        try:
            with open(self.log_path, "ab") as out:
                for chunk in self.container.logs(stream=True, follow=True):
                    out.write(chunk)
                    out.flush()
        except docker.errors.DockerException:
            return  # removed while streaming: stop() already took over

    def poll(self) -> int | None:
        import docker

        if self.returncode is not None:
            return self.returncode
        try:
            self.container.reload()
        except docker.errors.NotFound:
            self.returncode = -9 if self.returncode is None else self.returncode
            return self.returncode
        if self.container.status in ("exited", "dead"):
            self.returncode = int(self.container.attrs["State"]["ExitCode"])
            self._logger.join(5)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"container {self.pid} still running after {timeout}s")
            time.sleep(0.2)
        return self.returncode

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM, SIGKILL after `grace` seconds, then remove the container."""
        import docker

        try:
            self.container.stop(timeout=int(grace))
            self.poll()
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass
        if self.returncode is None:
            self.returncode = -15


@dataclass
class DockerPlatform(Platform):
    name: str = "docker"
    # Only what is implemented and tested on this platform: see tests/platforms/test_docker.py
    # and e2e/test_docker_journey.py; `metadata`: the engine's lineage store records docker runs
    # like any other (the snapshot and metadata scenarios pass here).
    capabilities: frozenset[str] = field(
        default_factory=lambda: frozenset({"pipelines", "training", "serving", "metadata"}))
    runtime_image: str = RUNTIME
    server_image: str = SERVER

    def __post_init__(self) -> None:
        self._client = engine.client()  # no engine, no permission: one clear MinikfError here
        self._cleaned: set[str] = set()
        self._lock = threading.Lock()
        self._checked = False

    def describe(self) -> dict:
        """The engine's version and the images (content tag, Python) the workloads ran in."""
        info = {**super().describe(), "docker": self._client.version().get("Version")}
        for key, ref in (("runtime_image", self.runtime_image), ("server_image", self.server_image)):
            image = self._image(ref)
            tags = [t for t in (image.tags if image else []) if not t.endswith(":latest")]
            info[key] = tags[0] if tags else (image.short_id if image else None)
            if image and key == "runtime_image":
                info["python"] = (image.labels or {}).get("minikf.python")
        return info

    def _image(self, ref: str):
        import docker

        try:
            return self._client.images.get(ref)
        except docker.errors.ImageNotFound:
            return None

    def check_images(self) -> None:
        """The images exist and were built from this source; else the command that fixes it."""
        import docker

        from minikf.images import wheelhouse

        if self._checked:
            return
        for ref in (self.runtime_image, self.server_image):
            try:
                image = self._client.images.get(ref)
            except docker.errors.ImageNotFound:
                raise MinikfError(f"image {ref} is not built: run `minikf images build`", 2) from None
        try:  # only the workload code runs in containers; other edits do not make them stale
            here = wheelhouse.source_hash(wheelhouse.project_root(), WORKLOAD)
        except MinikfError:
            here = None  # installed without a source checkout: nothing to compare with
        built = (image.labels or {}).get("minikf.workload")
        if here and built != here and self.runtime_image == RUNTIME:
            raise MinikfError(f"{ref} holds other minikf workload code ({built}, here {here}): "
                              "run `minikf images build`", 2)
        self._checked = True

    def _track(self, resources, run_id: str) -> None:
        """Once per run: remove all of the run's containers and networks at its cleanup, and
        write them into the run's record (a reaper removes them if the run is killed)."""
        with self._lock:
            if run_id in self._cleaned:
                return
            self._cleaned.add(run_id)
        resources.on_cleanup(lambda: _raise_problems(remove_labelled(self._client, run_id)))
        if hasattr(resources, "note_leftovers"):
            resources.note_leftovers(self.name, {"run_id": run_id})

    @classmethod
    def reap(cls, details: dict) -> list[str]:
        """A killed run's containers, networks and volumes (label minikf.run=<run id>)."""
        run_id = details.get("run_id")
        if not run_id:
            return []
        client = engine.client()
        try:
            found = leftovers(client, run_id)
            problems = remove_labelled(client, run_id)
        finally:
            client.close()
        return [f"removed {line}" for line in found] + problems  # problems: "could not ..."

    def launch(self, argv: list[str], env: dict[str, str], log_path: Path,
               resources: RunResources) -> ContainerHandle:
        """Run argv in a container (server image for the model server, else the runtime image)."""
        self.check_images()
        run_id = _run_id(resources)
        self._track(resources, run_id)
        command = [resolve_paths(token) for token in argv]
        if command and (command[0] == sys.executable or Path(command[0]).name.startswith("python")):
            command[0] = "python3"  # the image's venv python
        image = self.server_image if SERVER_MODULE in command else self.runtime_image
        log_path = Path(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        container = self._client.containers.run(
            image, command, detach=True, environment=dict(env), network_mode="host",
            mounts=mounts_for(host_paths(command)), user=f"{os.getuid()}:{os.getgid()}",
            labels={engine.RUN_LABEL: run_id, engine.OWNER_LABEL: "1",
                    engine.PROCESS_LABEL: engine.this_process()},
            name=f"minikf-{run_id}-{uuid.uuid4().hex[:6]}", init=True,
        )
        return ContainerHandle(container, log_path)

    def launch_driver(self, argv: list[str], env: dict[str, str], log_path: Path,
                      resources: RunResources) -> ProcessHandle:
        """The pipeline driver runs on this host; it hands each task to kfp.local.DockerRunner."""
        self.check_images()
        run_id = _run_id(resources)
        self._track(resources, run_id)
        image = self._client.images.get(self.runtime_image).tags
        content = next((t for t in image if not t.endswith(":latest")), self.runtime_image)
        proc = resources.spawn(resolve_json_arguments(argv), Path(log_path), env={
            **os.environ, **env, "MINIKF_KFP_RUNNER": "docker", "MINIKF_RUN_ID": run_id,
            "MINIKF_RUNTIME_IMAGE": content})
        # Cleanup callbacks run newest first: the driver stops before its containers are
        # removed, so it cannot start another task (an exit handler) after the removal.
        resources.on_cleanup(lambda: kill_process_group(proc))
        return proc


def _raise_problems(problems: list[str]) -> None:
    if problems:
        raise RuntimeError("; ".join(problems))


def leftovers(client, run_id: str | None = None) -> list[str]:
    """`kind name (run id)` for each container, network and volume a run left."""
    label = f"{engine.RUN_LABEL}={run_id}" if run_id else engine.RUN_LABEL
    found = [f"container {engine.container_name(c)} ({(c.get('Labels') or {}).get(engine.RUN_LABEL)})"
             for c in engine.labelled_containers(client, label)]
    found += [f"network {n.name}" for n in client.networks.list(filters={"label": label})]
    found += [f"volume {v.name}" for v in client.volumes.list(filters={"label": label})]
    return found


def remove_labelled(client, run_id: str | None = None) -> list[str]:
    """Remove the containers, networks and volumes of one run (or of every run); return problems."""
    import docker

    label = f"{engine.RUN_LABEL}={run_id}" if run_id else engine.RUN_LABEL
    problems = []
    for entry in engine.labelled_containers(client, label):
        try:
            client.api.remove_container(entry["Id"], force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: its removal is already in progress elsewhere
                problems.append(f"could not remove container {engine.container_name(entry)}: {exc}")
        except docker.errors.DockerException as exc:
            problems.append(f"could not remove container {engine.container_name(entry)}: {exc}")
    for kind in ("networks", "volumes"):
        for obj in getattr(client, kind).list(filters={"label": label}):
            try:
                obj.remove(force=True) if kind == "volumes" else obj.remove()
            except docker.errors.NotFound:
                pass
            except docker.errors.DockerException as exc:
                problems.append(f"could not remove {kind[:-1]} {getattr(obj, 'name', obj)}: {exc}")
    return problems


def orphans(client, run_id: str | None = None) -> list[str]:
    """The run ids (or only `run_id`) that have containers, networks or volumes and no living
    minikf process that started them: what `minikf clean` may remove by label. A run whose
    containers name a process that still runs (PROCESS_LABEL) is another command's live run."""
    label = f"{engine.RUN_LABEL}={run_id}" if run_id else engine.RUN_LABEL
    runs: dict[str, bool] = {}  # run id -> some container of it has a living owner
    for container in engine.labelled_containers(client, label):
        labels = container.get("Labels") or {}
        rid = labels.get(engine.RUN_LABEL, "")
        owned = engine.process_alive(labels.get(engine.PROCESS_LABEL))
        runs[rid] = runs.get(rid, False) or owned
    for kind in (client.networks, client.volumes):
        for obj in kind.list(filters={"label": label}):
            runs.setdefault((obj.attrs.get("Labels") or {}).get(engine.RUN_LABEL, ""), False)
    return sorted(rid for rid, live in runs.items() if rid and not live)
