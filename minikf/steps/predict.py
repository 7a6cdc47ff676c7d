"""Query the served model over V1 and V2, compare with the in-process predictions, time it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import requests

from minikf.runtime.errors import StepFailed
from minikf.steps.base import StepContext, StepKind, StepOutcome

MODEL_NAME = "fashion-mnist"


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def run(ctx: StepContext) -> StepOutcome:
    url = str(ctx.arg("url", kind=str)).rstrip("/")
    token = str(ctx.arg("token", kind=str))
    data_dir = Path(str(ctx.arg("data_dir", kind=(str, Path))))
    count = int(ctx.arg("count", 100, (int, str)))
    expected = ctx.arg("expected", None, (list, type(None)))
    try:
        with np.load(data_dir / "test.npz") as data:
            x, y = data["x"][:count].astype(np.float32), data["y"][:count]
    except (OSError, KeyError) as exc:
        raise StepFailed(f"step {ctx.name!r}: cannot read {data_dir / 'test.npz'}: {exc}") from None
    if len(x) == 0:
        raise StepFailed(f"step {ctx.name!r}: no test images in {data_dir / 'test.npz'}")
    if x.ndim == 2:
        x = x.reshape(-1, 28, 28)

    headers = {"Authorization": f"Bearer {token}"}
    v1_url = f"{url}/v1/models/{MODEL_NAME}:predict"
    v2_url = f"{url}/v2/models/{MODEL_NAME}/infer"
    errors: list[str] = []
    latencies: dict[str, list[float]] = {"v1": [], "v2": []}
    v1_preds: list[int | None] = []
    v2_preds: list[int | None] = []
    with requests.Session() as session:
        input_name = "input"
        try:  # a V2 client learns the input's name from the model's metadata
            meta = session.get(f"{url}/v2/models/{MODEL_NAME}", headers=headers, timeout=30)
            meta.raise_for_status()
            input_name = meta.json()["inputs"][0]["name"]
        except (requests.RequestException, KeyError, ValueError, IndexError) as exc:
            errors.append(f"V2 model metadata: {exc}")
        for i, image in enumerate(x):
            start = time.perf_counter()
            try:
                r1 = session.post(v1_url, json={"instances": [image.tolist()]}, headers=headers, timeout=30)
                latencies["v1"].append((time.perf_counter() - start) * 1000)
                r1.raise_for_status()
                v1_preds.append(int(r1.json()["predictions"][0]))
            except (requests.RequestException, KeyError, ValueError, IndexError) as exc:
                errors.append(f"V1 image {i}: {exc}")
                v1_preds.append(None)
            body = {"inputs": [{"name": input_name, "shape": [1, 28, 28], "datatype": "FP32",
                                "data": image.ravel().tolist()}],
                    "outputs": [{"name": "predictions"}]}
            start = time.perf_counter()
            try:
                r2 = session.post(v2_url, json=body, headers=headers, timeout=30)
                latencies["v2"].append((time.perf_counter() - start) * 1000)
                r2.raise_for_status()
                v2_preds.append(int(r2.json()["outputs"][0]["data"][0]))
            except (requests.RequestException, KeyError, ValueError, IndexError) as exc:
                errors.append(f"V2 image {i}: {exc}")
                v2_preds.append(None)

        mismatch = sum(1 for a, b in zip(v1_preds, v2_preds, strict=True) if a != b)
        if mismatch:
            errors.append(f"V1 and V2 disagree on {mismatch} image(s)")
        try:
            r = session.post(v1_url, json={"instances": [x[0].tolist()]}, timeout=10)
            if r.status_code != 401:
                errors.append(f"request without token got HTTP {r.status_code}, expected 401")
        except requests.RequestException as exc:
            errors.append(f"request without token failed: {exc}")
        try:
            r = session.post(v1_url, data=b"{not json", timeout=10,
                             headers={**headers, "Content-Type": "application/json"})
            if r.status_code != 400:
                errors.append(f"malformed body got HTTP {r.status_code}, expected 400")
        except requests.RequestException as exc:
            errors.append(f"malformed body request failed: {exc}")

    correct = sum(1 for p, t in zip(v1_preds, y, strict=True) if p is not None and p == int(t))
    if expected:
        n = min(len(expected), len(v1_preds))
        agree = sum(1 for p, e in zip(v1_preds[:n], expected[:n], strict=True) if p == int(e))
        agreement = agree / n if n else 0.0
    else:
        agreement = 1.0
    with ctx.open_log() as log:
        log.writelines(line + "\n" for line in errors[:20])
    every = latencies["v1"] + latencies["v2"]
    metrics = {
        "accuracy": correct / len(x),
        "agreement": agreement,
        "p50_ms": _percentile(every, 50),
        "p95_ms": _percentile(every, 95),
        "p99_ms": _percentile(every, 99),
        "errors": len(errors),
    }
    series = {f"{protocol}_latency_ms": values for protocol, values in latencies.items()}
    return StepOutcome(metrics=metrics, outputs={"predictions": v1_preds}, series=series)


OUTPUTS = ("accuracy", "agreement", "p50_ms", "p95_ms", "p99_ms", "errors", "predictions")

KIND = StepKind("predict", run, outputs=OUTPUTS)
