"""Serving throughput: the minikf model server against a stock KServe ModelServer and a ceiling.

One run, one machine, one model, one request body (a 28x28 image as V1 JSON), three targets
all started together and loaded in turn, round by round, with the same closed-loop locust load
(minikf.bench.loadgen):

- minikf: `python -m minikf.workload.server` (bearer token on);
- stock: `python -m minikf.bench.stock_server`, KServe ModelServer the plainest way;
- ceiling: `python -m minikf.bench.trivial_server`, a constant answer on uvicorn.

The server and the load generator are pinned to disjoint CPUs (see `cpu_plan`), so on 2 cores
each gets one and neither starves the other. Peak RSS is the server's VmHWM (the kernel's own
high-water mark) read just before it is stopped.

Then a burst: `burst_users` connections (200 by default) at once against minikf and stock, each
user honouring a 503's Retry-After as a well-behaved client does. A server that queues without
bound answers everything, late (p99 in seconds); one with a bounded queue refuses what it cannot
answer soon (503s, counted) and keeps the p99 of what it answers bounded.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from minikf.bench.rss import tree_peak_rss_mb
from minikf.runtime.ports import free_port
from minikf.runtime.processes import RunResources
from minikf.runtime.waiting import http_probe, wait_until

TARGETS = ("minikf", "stock", "ceiling")
V1_PATH = "/v1/models/fashion-mnist:predict"
READY_TIMEOUT_S = 60


@dataclass
class CpuPlan:
    server: list[int]
    loadgen: list[int]

    def describe(self, users: int) -> str:
        if self.server == self.loadgen:
            return (f"not pinned: only CPU(s) {self.server} available; server and load generator "
                    f"(1 locust process, {users} users) share them")
        return (f"each server (1 process, 1 uvicorn worker) pinned to CPU {self.server}; "
                f"load generator (1 locust process, {users} FastHttpUsers, gevent) pinned to "
                f"CPU {self.loadgen}")


def cpu_plan() -> CpuPlan:
    """Half the usable CPUs for the server, the rest for the load generator (1 and 1 on 2 cores)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return CpuPlan(cpus, cpus)
    half = len(cpus) // 2
    return CpuPlan(cpus[:half], cpus[half:])


def _pin(pid: int, cpus: list[int]) -> None:
    # Set right after spawn, before the child starts any thread: every thread inherits it.
    os.sched_setaffinity(pid, set(cpus))


def make_model(directory: Path) -> Path:
    """A FashionCNN with fixed random weights (the same compute as the trained one), published as
    the evaluate step publishes it: model.pt plus its model.onnx. The stock server reads model.pt."""
    import torch

    from minikf.workload.fast_infer import export_onnx
    from minikf.workload.model import FashionCNN, save_model

    torch.manual_seed(0)
    net = FashionCNN().eval()
    save_model(net, directory)
    export_onnx(net, directory)
    return directory


def request_body(batch: int = 1) -> bytes:
    import numpy as np

    images = np.random.default_rng(0).random((batch, 28, 28), dtype=np.float32)
    return json.dumps({"instances": images.round(4).tolist()}).encode()


def _server_argv(target: str, model_dir: Path, port: int) -> list[str]:
    if target == "minikf":
        return [sys.executable, "-m", "minikf.workload.server", "--model-dir", str(model_dir),
                "--port", str(port)]
    if target == "stock":
        return [sys.executable, "-m", "minikf.bench.stock_server", "--model-dir", str(model_dir),
                "--port", str(port)]
    return [sys.executable, "-m", "minikf.bench.trivial_server", "--port", str(port)]


def _wait_ready(url: str, proc, headers: dict, log: Path, body: bytes):
    """Poll with the benchmark's own request until a 200; return its answer."""
    probe = http_probe(lambda: requests.post(url + V1_PATH, data=body, timeout=2,
                                             headers={**headers, "Content-Type": "application/json"}),
                       lambda r: r.json() if r.status_code == 200 else None)
    return wait_until(probe, what=f"server on {url}", timeout_s=READY_TIMEOUT_S, interval_s=0.1,
                      proc=proc, detail=lambda: f":\n{log.read_text()[-2000:]}")


def _load(resources: RunResources, specs: list[dict], body: bytes, users: int, duration: float,
          warmup: float, rounds: int, plan: CpuPlan, workdir: Path, token: str, name: str,
          honour_retry_after: bool = False) -> dict:
    """One loadgen run over `specs`: its figures per target."""
    (workdir / f"{name}-targets.json").write_text(json.dumps(specs))
    (workdir / "body.json").write_bytes(body)
    out = workdir / f"{name}.json"
    load_env = {k: v for k, v in os.environ.items() if k != "MINIKF_SERVE_TOKEN"}
    load_env["MINIKF_BENCH_TOKEN"] = token
    argv = [sys.executable, "-m", "minikf.bench.loadgen", "--targets", str(workdir / f"{name}-targets.json"),
            "--body", str(workdir / "body.json"), "--users", str(users), "--duration", str(duration),
            "--warmup", str(warmup), "--rounds", str(rounds), "--out", str(out)]
    if honour_retry_after:
        argv.append("--honour-retry-after")
    loadgen = resources.spawn(argv, workdir / f"{name}.log", env=load_env)
    _pin(loadgen.pid, plan.loadgen)
    budget = rounds * len(specs) * (duration + warmup + 40) + 60
    code = loadgen.wait(timeout=budget)
    if code != 0 or not out.exists():
        raise RuntimeError(f"load generator failed (rc {code}):\n"
                           f"{(workdir / f'{name}.log').read_text()[-2000:]}")
    return json.loads(out.read_text())


def measure(targets: tuple[str, ...], model_dir: Path, body: bytes, users: int, duration: float,
            warmup: float, rounds: int, plan: CpuPlan, workdir: Path, burst_users: int = 0,
            burst_duration: float = 10.0) -> dict:
    """Start every server, check minikf and stock agree, load them round by round, read RSS;
    then the burst (minikf and stock), if asked."""
    token = secrets.token_urlsafe(16)
    resources = RunResources()
    try:
        servers, specs = {}, []
        for target in targets:
            port = free_port()
            env = {k: v for k, v in os.environ.items()
                   if k not in ("MINIKF_SERVE_TOKEN", "MINIKF_BENCH_TOKEN")}
            if target == "minikf":
                env["MINIKF_SERVE_TOKEN"] = token
            log = workdir / f"{target}-server.log"
            proc = resources.spawn(_server_argv(target, model_dir, port), log, env=env)
            _pin(proc.pid, plan.server)
            servers[target] = (proc, log)
            specs.append({"name": target, "url": f"http://127.0.0.1:{port}", "path": V1_PATH,
                          "auth": target == "minikf"})
        answers = {}
        for spec in specs:
            proc, log = servers[spec["name"]]
            headers = {"Authorization": f"Bearer {token}"} if spec["auth"] else {}
            answers[spec["name"]] = _wait_ready(spec["url"], proc, headers, log, body)
        if "minikf" in answers and "stock" in answers and answers["minikf"] != answers["stock"]:
            raise RuntimeError(f"minikf and stock servers disagree: {answers['minikf']} vs "
                               f"{answers['stock']}")
        figures = _load(resources, specs, body, users, duration, warmup, rounds, plan, workdir,
                        token, "load")
        burst_specs = [s for s in specs if s["name"] in ("minikf", "stock")]
        if burst_users and burst_specs:
            figures["burst"] = _load(resources, burst_specs, body, burst_users, burst_duration,
                                     warmup, 1, plan, workdir, token, "burst", honour_retry_after=True)
        for target, (proc, log) in servers.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{target} server died under load:\n{log.read_text()[-2000:]}")
            figures[target]["peak_rss_mb"] = tree_peak_rss_mb(proc.pid)
        return figures
    finally:
        resources.cleanup()


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def bench_serve(users: int = 16, duration: float = 10.0, warmup: float = 1.0, rounds: int = 3,
                model_dir: Path | None = None, targets: tuple[str, ...] = TARGETS,
                burst_users: int = 200, burst_duration: float | None = None) -> dict:
    """Measure every target under the same load, then the burst; figures, ratios and how CPUs
    were split."""
    plan = cpu_plan()
    body = request_body()
    with tempfile.TemporaryDirectory(prefix="minikf-bench-serve-") as tmp:
        work = Path(tmp)
        model = Path(model_dir) if model_dir else make_model(work / "model")
        results = measure(targets, model, body, users, duration, warmup, rounds, plan, work,
                          burst_users, duration if burst_duration is None else burst_duration)
    burst = results.pop("burst", None)
    out: dict = {
        "users": users,
        "duration_s": duration,
        "warmup_s": warmup,
        "rounds": rounds,
        "request": "V1 JSON, 1 image 28x28 per request, closed loop, no think time",
        "cpu_plan": asdict(plan),
        "pinning": plan.describe(users),
        "targets": results,
    }
    if "minikf" in results and "stock" in results:
        a, b = results["minikf"], results["stock"]
        out["ratio_rps_minikf_vs_stock"] = _ratio(a["rps"], b["rps"])
        out["ratio_p99_minikf_vs_stock"] = _ratio(a["p99_ms"], b["p99_ms"])
    if "minikf" in results and "ceiling" in results:
        out["ratio_rps_minikf_vs_ceiling"] = _ratio(results["minikf"]["rps"], results["ceiling"]["rps"])
    if burst:
        out["burst"] = {"users": burst_users, "duration_s": duration if burst_duration is None
                        else burst_duration, "retry_after_honoured": True, "targets": burst}
    return out
