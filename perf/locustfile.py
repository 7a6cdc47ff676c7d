"""The serving load as a plain locustfile, for locust's own CLI or web UI.

    MINIKF_BENCH_TOKEN=... locust -f perf/locustfile.py --host http://127.0.0.1:8080 \
        --headless -u 16 -r 16 -t 30s

`minikf bench serve` uses the same request (one 28x28 image as V1 JSON, no think time) through
locust as a library (minikf/bench/loadgen.py), against three servers in one run; this file is for
pointing the same load at a server you started yourself (`minikf serve --model DIR`).
Set MINIKF_BENCH_PROTOCOL=v2 for the V2 infer route.
"""

from __future__ import annotations

import json
import os
import random

from locust import FastHttpUser, constant, task

MODEL = os.environ.get("MINIKF_BENCH_MODEL", "fashion-mnist")
TOKEN = os.environ.get("MINIKF_BENCH_TOKEN", "")
PROTOCOL = os.environ.get("MINIKF_BENCH_PROTOCOL", "v1")

_rng = random.Random(0)
_IMAGE = [[round(_rng.random(), 4) for _ in range(28)] for _ in range(28)]
if PROTOCOL == "v2":
    PATH = f"/v2/models/{MODEL}/infer"
    BODY = json.dumps({"inputs": [{"name": "input", "shape": [1, 28, 28], "datatype": "FP32",
                                   "data": [v for row in _IMAGE for v in row]}]}).encode()
else:
    PATH = f"/v1/models/{MODEL}:predict"
    BODY = json.dumps({"instances": [_IMAGE]}).encode()
HEADERS = {"Content-Type": "application/json", **({"Authorization": f"Bearer {TOKEN}"} if TOKEN else {})}


class ModelClient(FastHttpUser):
    wait_time = constant(0)

    @task
    def infer(self) -> None:
        with self.client.post(PATH, data=BODY, headers=HEADERS, name=PROTOCOL,
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
