"""What each pod of the kubernetes training job runs: fetch the data, train, hand the model back.

    python3 -m minikf.kube.job_entry --mirrors URL[,URL] [--sample] --epochs N --batch-size B --lr LR

Every worker fetches and preprocesses the data itself (MD5-verified; from http(s) mirrors, or
from the ConfigMap the platform mounts for the small bundled sample), then runs the same
train_worker as the local platform under the Training Operator's MASTER_ADDR/WORLD_SIZE/RANK
(or Kubeflow Trainer's PET_* variables, mapped onto them). Rank 0
prints the model and metrics as a base64 tar.gz between markers in its log, so the harness needs
only `get pods/log` to bring the model back: no exec, no object-store credentials.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mirrors", required=True, help="comma-separated URLs or a mounted directory")
    parser.add_argument("--sample", action="store_true", help="the bundled sample's checksums")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--schedule", default="constant", help="train_worker's --schedule")
    parser.add_argument("--augment", action="store_true", help="train_worker's --augment")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temp dir)")
    return parser.parse_args(argv)


# Kubeflow Trainer's torch runtime names the rendezvous for torchrun; one process per node here.
TRAINER_ENV = {"PET_NNODES": "WORLD_SIZE", "PET_NODE_RANK": "RANK",
               "PET_MASTER_ADDR": "MASTER_ADDR", "PET_MASTER_PORT": "MASTER_PORT"}


def contract_from_trainer_env(env: dict) -> dict:
    """The MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK contract from a TrainJob's PET_* variables,
    when the Training Operator's own variables are not there."""
    if "RANK" in env or "PET_NODE_RANK" not in env:
        return {}
    return {ours: env[theirs] for theirs, ours in TRAINER_ENV.items() if theirs in env}


def rank0_listens_on_own_ip(env: dict) -> dict:
    """On the core flavor every rank's MASTER_ADDR is a Service routed to rank 0; rank 0 itself
    hosts the rendezvous store on its own pod IP (MINIKF_POD_IP, from the downward API) rather
    than reaching itself through that Service, which needs hairpin mode on the node's bridge."""
    if env.get("RANK") == "0" and env.get("MINIKF_POD_IP"):
        return {"MASTER_ADDR": env["MINIKF_POD_IP"]}
    return {}


def main(argv: list[str] | None = None) -> int:
    from minikf.kube.objects import pack_dir
    from minikf.workload import fashion_data, train_worker
    from minikf.workload.contract import recipe_flags

    args = parse_args(argv)
    os.environ.update(contract_from_trainer_env(dict(os.environ)))
    os.environ.update(rank0_listens_on_own_ip(dict(os.environ)))
    work = args.work or Path(tempfile.mkdtemp(prefix="minikf-job-"))
    checksums = fashion_data.SAMPLE_FILES if args.sample else fashion_data.FILES
    raw, data, out = work / "raw", work / "data", work / "out"
    fashion_data.download(raw, args.mirrors.split(","), dict(checksums))
    fashion_data.preprocess(raw, data)
    train_worker.main(["--data", str(data), "--out", str(out), "--epochs", str(args.epochs),
                       "--batch-size", str(args.batch_size), "--lr", str(args.lr),
                       *recipe_flags(args.schedule, args.augment)])
    if os.environ.get("RANK", "0") == "0":
        handback = work / "handback"
        (handback / "model").mkdir(parents=True, exist_ok=True)
        for item in (out / "model").iterdir():
            (handback / "model" / item.name).write_bytes(item.read_bytes())
        (handback / "metrics.jsonl").write_bytes((out / "metrics.jsonl").read_bytes())
        sys.stdout.write(pack_dir(handback))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    from minikf.workload.train_worker import exit_code_of

    code = exit_code_of(main)  # a failure: its traceback and a last line naming the rank
    # As the train worker does: every file is written and the handback flushed; tearing torch
    # down could deadlock in gloo (see train_worker's docstring), so the process just ends.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
