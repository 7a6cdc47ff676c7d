"""The docker platform: each workload (training worker, model server, pipeline task) is a
container on the local Docker Engine, from the images minikf builds (images/).

Containers use host networking, so workers meet at MASTER_ADDR=127.0.0.1 exactly as on the
local platform and the model server binds 127.0.0.1 only. The run's work dir is
bind-mounted at the same path, and containers run as the caller's uid:gid so what they
write belongs to the caller. Everything carries the label minikf.run=<run id>: the run's
cleanup removes it, also on failure and Ctrl-C, and `minikf clean` removes what a crashed
run left behind.

A user's workloads (`limited`: a profile's quota) are containers of their own: `--cpus` and
`--memory` (no swap beyond it) from the quota, enforced by the kernel's cgroups, so a container
over its memory is stopped and says so; only the user's own dir is mounted of the run's dir.
A process that a library starts itself (nbclient's kernel) is a `docker run` of the same
container (`command_argv`).
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from minikf.images import engine
from minikf.images.build import WORKLOAD
from minikf.images.mounts import host_paths, mounts_for, resolve_json_arguments, resolve_paths
from minikf.platforms.base import Command, Platform, UserLimits, host_shared_memory_dir
from minikf.runtime.errors import MinikfError
from minikf.runtime.processes import ProcessHandle, RunResources, kill_process_group
from minikf.workload.contract import SERVER_MODULE

RUNTIME = "minikf/runtime:latest"
SERVER = "minikf/server:latest"
USER_LABEL = "minikf.user"  # the profile a container runs for


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
    memory_mb: int | None = None
    exit_reason: str | None = None
    """Why it ended, when its exit code does not say: over its memory quota, removed."""
    _logger: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._logger = threading.Thread(target=self._copy_logs, daemon=True)
        self._logger.start()

    @property
    def pid(self) -> str:
        return self.container.short_id

    @property
    def host_pid(self) -> int:
        """The host pid of the container's first process (its init)."""
        return int(self.container.attrs["State"]["Pid"])

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
            self.returncode = -9
            self.exit_reason = "was removed while it ran (its container is gone: docker rm, minikf clean)"
            return self.returncode
        if self.container.status in ("exited", "dead"):
            state = self.container.attrs["State"]
            if state.get("OOMKilled"):
                quota = f"its memory quota of {self.memory_mb} MiB" if self.memory_mb \
                    else "the memory it may use"
                self.exit_reason = f"killed: over {quota} (OOMKilled)"
            self.returncode = int(state["ExitCode"])
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
    # Only what is implemented and tested here: every scenario passes on docker (CI runs the
    # conformance suite on it). Not `gpu`: containers can have one (--gpus), no machine here had.
    capabilities: frozenset[str] = field(default_factory=lambda: frozenset(
        {"pipelines", "training", "serving", "metadata", "tuning", "notebooks", "isolation"}))
    runtime_image: str = RUNTIME
    server_image: str = SERVER
    limits: UserLimits | None = None
    """Set on the copy `limited` returns: every container of it is the user's."""

    def __post_init__(self) -> None:
        self._client = engine.client()  # no engine, no permission: one clear MinikfError here
        self._cleaned: set[str] = set()
        self._lock = threading.Lock()
        self._checked = False

    def describe(self) -> dict:
        """The engine's version and the images (content tag, Python) the workloads ran in."""
        info = {**super().describe(), "docker": self._client.version().get("Version")}
        if self.limits is not None:
            info["limits"] = {"user": self.limits.user, "cpus": self.limits.cpus,
                              "memory_mb": self.limits.memory_mb, "enforced_by": "docker cgroups"}
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

    def prewarm(self, module: str, resources: RunResources, scratch: Path) -> None:
        """Nothing is imported ahead (containers start cold); the run starts, so the window over
        which other processes' CPU use is sampled for sizing a training job starts too."""
        self.cpu_meter().mark()

    def cpu_quota(self) -> float | None:
        """A user's containers get --cpus of their quota: their job fits in it."""
        return float(self.limits.cpus) if self.limits is not None else None

    def limited(self, limits: UserLimits) -> DockerPlatform:
        """This platform for one user: their containers get `--cpus`, `--memory` (no swap beyond
        it) and, of a run's dir, only the user's own dir mounted."""
        held = copy.copy(self)
        held.limits = limits
        return held

    def shared_memory_dir(self, resources: RunResources) -> Path | None:
        """A job's containers all run on this host (its daemon's), as the local platform's
        processes do: the directory on its tmpfs is mounted into each at the same path (as any
        host path in a worker's env is), so the ranks share memory there too."""
        return host_shared_memory_dir(resources)

    def _container(self, argv: list[str], paths: list[str], resources: RunResources) -> dict:
        """The `containers.run` arguments of one workload (image, command, mounts, user, labels,
        limits), shared by `launch` and `command_argv`."""
        self.check_images()
        run_id = _run_id(resources)
        self._track(resources, run_id)
        command = [resolve_paths(token) for token in argv]
        if command and (command[0] == sys.executable or Path(command[0]).name.startswith("python")):
            command[0] = "python3"  # the image's venv python
        labels = {engine.RUN_LABEL: run_id, engine.OWNER_LABEL: "1",
                  engine.PROCESS_LABEL: engine.this_process()}
        confine = None
        limits: dict = {}
        if self.limits is not None:
            labels[USER_LABEL] = self.limits.user
            confine = self.limits.home
            memory = f"{self.limits.memory_mb}m"
            limits = {"nano_cpus": self.limits.cpus * 10**9, "mem_limit": memory,
                      "memswap_limit": memory}
        return dict(
            image=self.server_image if SERVER_MODULE in command else self.runtime_image,
            command=command, network_mode="host", user=f"{os.getuid()}:{os.getgid()}",
            mounts=mounts_for(host_paths(command) + host_paths(paths), confine=confine),
            labels=labels, name=f"minikf-{run_id}-{uuid.uuid4().hex[:6]}", init=True, **limits)

    def launch(self, argv: list[str], env: dict[str, str], log_path: Path,
               resources: RunResources) -> ContainerHandle:
        """Run argv in a container (server image for the model server, else the runtime image);
        host paths in argv and in env's values are mounted at the same path."""
        spec = self._container(argv, list(env.values()), resources)
        log_path = Path(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        container = self._client.containers.run(detach=True, environment=dict(env), **spec)
        return ContainerHandle(container, log_path,
                               memory_mb=self.limits.memory_mb if self.limits else None)

    def command_argv(self, command: Command, resources: RunResources) -> list[str]:
        """`docker run` of the workload container for `command`, in the foreground: the
        library that starts it talks to it as to a local process (signals pass through,
        its exit code is the container's); `command.env` passes through by name."""
        docker_cli = shutil.which("docker")
        if docker_cli is None:
            raise MinikfError("the docker command line is needed to run this process in a "
                              "container (Debian: apt-get install docker.io, or docker-ce-cli)", 2)
        paths = [str(p) for p in command.paths] + ([str(command.cwd)] if command.cwd else [])
        spec = self._container(command.argv, paths, resources)
        # stderr only: a kernel that finds no parent pid prints its connection banner on stdout
        argv = [docker_cli, "run", "--rm", "--init", "--attach=stderr", "--network",
                spec["network_mode"], "--user", spec["user"], "--name", spec["name"]]
        argv += [f"--label={key}={value}" for key, value in spec["labels"].items()]
        for mount in spec["mounts"]:
            argv.append(f"--mount=type=bind,source={mount['Source']},target={mount['Target']}"
                        + (",readonly" if mount.get("ReadOnly") else ""))
        argv += [f"--env={name}" for name in command.env]
        if command.cwd is not None:
            argv.append(f"--workdir={command.cwd}")
        if self.limits is not None:
            argv += [f"--cpus={self.limits.cpus}", f"--memory={spec['mem_limit']}",
                     f"--memory-swap={spec['memswap_limit']}"]
        return [*argv, spec["image"], *spec["command"]]

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
    found = [f"container {c.name} ({c.labels.get(engine.RUN_LABEL)})"
             for c in client.containers.list(all=True, filters={"label": label},
                                             ignore_removed=True)]
    found += [f"network {n.name}" for n in client.networks.list(filters={"label": label})]
    found += [f"volume {v.name}" for v in client.volumes.list(filters={"label": label})]
    return found


def remove_labelled(client, run_id: str | None = None) -> list[str]:
    """Remove the containers, networks and volumes of one run (or of every run); return problems."""
    import docker

    label = f"{engine.RUN_LABEL}={run_id}" if run_id else engine.RUN_LABEL
    problems = []
    for kind in ("containers", "networks", "volumes"):
        collection = getattr(client, kind)
        # ignore_removed: a container going away while listed (a kernel's, removed as it ends)
        listing = collection.list(all=True, filters={"label": label}, ignore_removed=True) \
            if kind == "containers" else collection.list(filters={"label": label})
        for obj in listing:
            try:
                obj.remove() if kind == "networks" else obj.remove(force=True)
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
    for container in client.containers.list(all=True, filters={"label": label},
                                            ignore_removed=True):
        rid = container.labels.get(engine.RUN_LABEL, "")
        owned = engine.process_alive(container.labels.get(engine.PROCESS_LABEL))
        runs[rid] = runs.get(rid, False) or owned
    for kind in (client.networks, client.volumes):
        for obj in kind.list(filters={"label": label}):
            runs.setdefault((obj.attrs.get("Labels") or {}).get(engine.RUN_LABEL, ""), False)
    return sorted(rid for rid, live in runs.items() if rid and not live)
