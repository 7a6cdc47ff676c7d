"""Closed-loop HTTP load with locust as a library, headless, in its own process.

    python -m minikf.bench.loadgen --targets FILE --body FILE --users N --duration S
        [--warmup S] [--rounds R] [--honour-retry-after] [--out FILE]

--targets is a JSON list of {"name", "url", "path", "auth"}. The bearer token for targets with
"auth": true comes from MINIKF_BENCH_TOKEN (never argv, never written out). For each round, each
target in turn gets N locust FastHttpUsers posting the same pre-encoded body back to back (no
think time) for warm-up + duration seconds; only the duration counts. Interleaving the targets
round by round spreads a noisy neighbour's bursts over all of them, so the ratios hold.

Writes one JSON object {name: figures}: requests, errors, rps, p50/p95/p99/mean/max in ms
(percentiles over every round's response times merged), and the per-round rps. A 503 is not an
error but a refusal: counted as `rejected_503`, its (short) time in the percentiles of all
answers, while `ok_rps` and `p50_ok_ms`/`p99_ok_ms` are those of the 200s alone. With
--honour-retry-after a user that got a 503 waits its Retry-After before the next request, as a
well-behaved client (urllib3's Retry, for one) does.

It runs as a separate process because importing locust monkey-patches the standard library with
gevent, which must not happen inside the minikf CLI or a pytest worker.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path

TOKEN_ENV = "MINIKF_BENCH_TOKEN"


def _phase(url: str, path: str, body: bytes, headers: dict, users: int, duration: float,
           warmup: float, honour_retry_after: bool = False) -> dict:
    """One target, one round: locust's raw counts for the measured window."""
    import gevent
    from locust import FastHttpUser, constant, task
    from locust.env import Environment

    class Client(FastHttpUser):
        host = url
        wait_time = constant(0)
        network_timeout = 30.0
        connection_timeout = 10.0

        @task
        def infer(self) -> None:
            pause = 0.0
            with self.client.post(path, data=body, headers=headers, name="infer",
                                  catch_response=True) as response:
                if response.status_code == 503:
                    response.request_meta["name"] = "rejected"
                    response.success()
                    try:
                        pause = float(response.headers.get("retry-after") or 0)
                    except ValueError:
                        pause = 0.0
                elif response.status_code != 200:
                    response.failure(f"HTTP {response.status_code}")
            if honour_retry_after and pause > 0:
                gevent.sleep(pause)

    env = Environment(user_classes=[Client])
    runner = env.create_local_runner()
    try:
        runner.start(users, spawn_rate=max(users, 1) * 100)
        gevent.sleep(warmup)
        env.stats.reset_all()
        started = time.monotonic()
        gevent.sleep(duration)
        # Read everything before stopping: stopping kills users mid-request.
        total = env.stats.total
        rejected = env.stats.get("rejected", "POST")
        infer = env.stats.get("infer", "POST")
        return {
            "seconds": time.monotonic() - started,
            "requests": total.num_requests,
            "errors": total.num_failures,
            "rejected": rejected.num_requests,
            "ok": infer.num_requests - infer.num_failures,
            "response_times": dict(total.response_times),
            "ok_response_times": dict(infer.response_times),
            "total_ms": total.total_response_time,
            "max_ms": total.max_response_time,
            "error_samples": sorted({str(e.error) for e in env.stats.errors.values()})[:3],
        }
    finally:
        runner.quit()


def summarize(phases: list[dict]) -> dict:
    from locust.stats import calculate_response_time_percentile

    times: Counter = Counter()
    ok_times: Counter = Counter()
    for phase in phases:
        times.update(phase["response_times"])
        ok_times.update(phase.get("ok_response_times", {}))
    requests = sum(p["requests"] for p in phases)
    seconds = sum(p["seconds"] for p in phases)
    ok_count = sum(ok_times.values())

    def pct(q: float, counts: Counter = times, n: int = requests) -> float:
        return float(calculate_response_time_percentile(dict(counts), n, q)) if n else 0.0

    return {
        "requests": requests,
        "errors": sum(p["errors"] for p in phases),
        "seconds": seconds,
        "rps": requests / seconds if seconds else 0.0,
        "rps_per_round": [p["requests"] / p["seconds"] for p in phases if p["seconds"]],
        "rejected_503": sum(p.get("rejected", 0) for p in phases),
        "ok_rps": sum(p.get("ok", 0) for p in phases) / seconds if seconds else 0.0,
        "p50_ok_ms": pct(0.50, ok_times, ok_count),
        "p99_ok_ms": pct(0.99, ok_times, ok_count),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_ms": sum(p["total_ms"] for p in phases) / requests if requests else 0.0,
        "max_ms": max((p["max_ms"] or 0.0 for p in phases), default=0.0),
        "error_samples": sorted({e for p in phases for e in p["error_samples"]})[:3],
    }


def run_load(targets: list[dict], body: bytes, users: int, duration: float, warmup: float,
             rounds: int, token: str | None, honour_retry_after: bool = False) -> dict:
    phases: dict[str, list[dict]] = {t["name"]: [] for t in targets}
    for _ in range(rounds):
        for target in targets:
            headers = {"Content-Type": "application/json"}
            if target.get("auth") and token:
                headers["Authorization"] = f"Bearer {token}"
            phases[target["name"]].append(
                _phase(target["url"], target["path"], body, headers, users, duration, warmup,
                       honour_retry_after))
    return {name: summarize(p) for name, p in phases.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", type=Path, required=True)
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--honour-retry-after", action="store_true",
                        help="after a 503, wait its Retry-After before the next request")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    figures = run_load(json.loads(args.targets.read_text()), args.body.read_bytes(), args.users,
                       args.duration, args.warmup, args.rounds, os.environ.get(TOKEN_ENV) or None,
                       args.honour_retry_after)
    text = json.dumps(figures)
    if args.out:
        args.out.write_text(text)
    print(text, flush=True)


if __name__ == "__main__":
    main()
