"""Run one of minikf's pipelines on a cluster's Kubeflow Pipelines API with kfp.Client.

    python -m minikf.kube.kfp_driver NAME [--root IGNORED] --arguments JSON
    python -m minikf.kube.kfp_driver --notebook NB [--package-out F] ... (compiled with Kale)

The same command line as minikf.pipelines.run_local (the pipeline step starts either one), and
the same last line: a JSON object with `output` and `seconds`. The cluster comes from the
environment the kubernetes platform sets: MINIKF_KUBECONFIG, MINIKF_KUBE_CONTEXT, MINIKF_NAMESPACE.
The KFP API is reached at MINIKF_KFP_HOST when set (an ingress URL; MINIKF_KFP_TOKEN is sent as
a bearer token if the ingress needs one), otherwise through a port-forward to the ml-pipeline
pod in MINIKF_KFP_NAMESPACE (default kubeflow), which needs no ingress and no KFP auth.
Multi-user Kubeflow (the full manifests) wants the user's identity on direct API calls: the
`kubeflow-userid` header carries MINIKF_KFP_USER, which the kubernetes platform sets (from the
namespace's `owner` annotation when not given, see KubernetesPlatform.kfp_user).
The run is waited for until it ends in any way, cancelled elsewhere included (kfp.Client's own
wait knows only succeeded/failed/skipped/error, so it would wait a cancelled run out).
KFP's v2 run API does not return a pipeline's output parameters, so `output` is null here.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import time
import warnings

KFP_PORT = 8888
KFP_SELECTOR = "app=ml-pipeline"
# Every state of KFP's v2beta1 RuntimeState after which the run will not go on (CANCELING: it is
# being cancelled, by someone else if it was not us). SUCCEEDED alone is success.
FINAL_STATES = frozenset({"SUCCEEDED", "SKIPPED", "FAILED", "CANCELING", "CANCELED"})
USER_HEADER = "kubeflow-userid"


def kfp_endpoint(cluster, kfp_namespace: str):
    """(url, closer): MINIKF_KFP_HOST as given, else a port-forward to a Running ml-pipeline pod."""
    host = os.environ.get("MINIKF_KFP_HOST")
    if host:
        return host.rstrip("/"), lambda: None
    from kubernetes import client

    from minikf.kube.portforward import PortForward
    from minikf.runtime.errors import MinikfError

    pods = client.CoreV1Api(cluster.api_client).list_namespaced_pod(
        kfp_namespace, label_selector=KFP_SELECTOR, _request_timeout=30)
    running = [p for p in pods.items if p.status and p.status.phase == "Running"]
    if not running:
        raise MinikfError(f"no Running Kubeflow Pipelines API pod ({KFP_SELECTOR}) in namespace "
                          f"{kfp_namespace!r}; install KFP or set MINIKF_KFP_HOST", 4)
    forward = PortForward(cluster.api_client, kfp_namespace, running[0].metadata.name, KFP_PORT)
    return forward.start(), forward.close


def wait_for_run(client, run_id: str, timeout_s: float, poll_s: float = 2.0):
    """The run once its state is final (FINAL_STATES); TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        run = client.get_run(run_id)
        if str(run.state).upper() in FINAL_STATES:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {run.state} after {timeout_s:g}s")
        time.sleep(poll_s)


def _no_identity(exc: Exception) -> bool:
    """Whether multi-user KFP refused the call for want of the user identity header."""
    return "no user identity header" in str(getattr(exc, "body", "") or exc).lower()


class Stopped(Exception):
    """SIGTERM while waiting for the run."""


def _stopped(signum, frame) -> None:
    raise Stopped()


def compile_package(pipeline, path, pull_policy: str = "IfNotPresent"):
    """kfp's compiler output plus a Kubernetes platform spec giving every executor `pull_policy`
    (what kfp-kubernetes' set_image_pull_policy writes): images loaded into kind are in no
    registry, and a `:latest` tag would otherwise mean Always."""
    from pathlib import Path

    from kfp import compiler

    path = Path(path)
    compiler.Compiler().compile(pipeline, str(path))
    return with_pull_policy(path, pull_policy)


def with_pull_policy(path, pull_policy: str = "IfNotPresent"):
    """An IR package with `pull_policy` in its Kubernetes platform spec for every executor."""
    from pathlib import Path

    import yaml

    path = Path(path)
    docs = list(yaml.safe_load_all(path.read_text()))
    spec, platform = docs[0], (docs[1] if len(docs) > 1 else {}) or {}
    executors = (platform.setdefault("platforms", {}).setdefault("kubernetes", {})
                 .setdefault("deploymentSpec", {}).setdefault("executors", {}))
    for name in spec["deploymentSpec"]["executors"]:
        executors.setdefault(name, {}).setdefault("imagePullPolicy", pull_policy)
    path.write_text(yaml.safe_dump_all([spec, platform], sort_keys=False))
    return path


def _package(args, tmp: str):
    """The package to submit: one of minikf's pipelines, or a notebook Kale compiles (in the
    cluster each Kale step is a pod of its own, so its /tmp paths are its own)."""
    import shutil

    from minikf.pipelines.run_local import load_pipeline

    if args.notebook is None:
        return compile_package(load_pipeline(args.name), os.path.join(tmp, "pipeline.yaml"))
    from minikf.pipelines.kale import compile_notebook

    package = compile_notebook(args.notebook, os.path.join(tmp, "pipeline.yaml")).package
    if args.package_out:
        shutil.copyfile(package, args.package_out)
    return with_pull_policy(package)


def main(argv: list[str] | None = None) -> int:
    from minikf.kube.client import connect
    from minikf.pipelines import PIPELINES
    from minikf.runtime.errors import MinikfError

    parser = argparse.ArgumentParser()
    parser.add_argument("name", nargs="?", choices=sorted(PIPELINES))
    parser.add_argument("--notebook", help="an annotated notebook, compiled with Kale")
    parser.add_argument("--package-out", help="where the compiled notebook's YAML goes")
    parser.add_argument("--root", default=None, help="ignored: the cluster's pipeline root is used")
    parser.add_argument("--arguments", default="{}", help="pipeline arguments as JSON")
    parser.add_argument("--timeout", type=float,
                        default=float(os.environ.get("MINIKF_PIPELINE_TIMEOUT", "3600")))
    args = parser.parse_args(argv)
    if (args.name is None) == (args.notebook is None):
        parser.error("give a pipeline NAME or --notebook NB (one of them)")
    label = args.name or os.path.splitext(os.path.basename(args.notebook))[0]
    namespace = os.environ.get("MINIKF_NAMESPACE", "default")
    try:
        closer = lambda: None  # noqa: E731
        if not os.environ.get("MINIKF_KFP_HOST"):
            cluster = connect(os.environ.get("MINIKF_KUBECONFIG"), os.environ.get("MINIKF_KUBE_CONTEXT"))
        else:
            cluster = None
        host, closer = kfp_endpoint(cluster, os.environ.get("MINIKF_KFP_NAMESPACE", "kubeflow"))
        warnings.simplefilter("ignore", FutureWarning)  # kfp.Client's notice about KFP versions
        import kfp

        client = kfp.Client(host=host, namespace=namespace,
                            existing_token=os.environ.get("MINIKF_KFP_TOKEN") or None)
        if os.environ.get("MINIKF_KFP_USER"):  # one ApiClient is shared by all of kfp.Client's APIs
            client._run_api.api_client.set_default_header(USER_HEADER, os.environ["MINIKF_KFP_USER"])
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="minikf-kfp-") as tmp:
            package = _package(args, tmp)
            run = client.create_run_from_pipeline_package(
                str(package), arguments=json.loads(args.arguments),
                run_name=f"minikf-{label}-{secrets.token_hex(3)}", experiment_name="minikf",
                namespace=namespace)
        print(f"submitted run {run.run_id} to {host}", flush=True)
        try:
            signal.signal(signal.SIGTERM, _stopped)  # the engine's cleanup, a timeout, Ctrl-C
            done = wait_for_run(client, run.run_id, args.timeout)
        except (Stopped, KeyboardInterrupt, TimeoutError) as exc:
            # nothing left running on the cluster: the run is terminated, not just abandoned
            client.terminate_run(run.run_id)
            print(f"run {run.run_id} terminated ({type(exc).__name__})", flush=True)
            return 1
        seconds = round(time.monotonic() - started, 3)
    except MinikfError as exc:
        print(f"error: {exc.message}", flush=True)
        return 2
    except Exception as exc:  # noqa: BLE001 - the step shows this line, not a traceback
        if _no_identity(exc):
            print(f"error: the Kubeflow Pipelines API is multi-user and wants the {USER_HEADER} header: "
                  f"set MINIKF_KFP_USER to a user with edit rights in namespace {namespace!r} (or give the "
                  f"namespace an `owner` annotation, as Kubeflow profiles have)", flush=True)
            return 2
        print(f"error: the Kubeflow Pipelines API: {type(exc).__name__}: {exc}".splitlines()[0], flush=True)
        return 2
    finally:
        closer()
    state = str(done.state)
    if state != "SUCCEEDED":
        error = getattr(done, "error", None)
        why = f": {error.message}" if error is not None and getattr(error, "message", None) else ""
        if state in ("CANCELING", "CANCELED"):
            why = why or " (cancelled outside minikf: in the KFP UI or API)"
        print(f"run {run.run_id} finished with status FAILURE (state {state}{why})", flush=True)
    print(json.dumps({"output": None, "seconds": seconds, "run_id": run.run_id, "state": state}),
          flush=True)
    return 0 if state == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
