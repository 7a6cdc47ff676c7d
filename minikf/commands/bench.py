"""`minikf bench ...`: benchmarks, each against a baseline measured beside it in the same run.

Every command prints a table and takes the same output options: --json PATH, --save (to
perf/results/<machine>/), --report DIR (a section in DIR/report.html), --compare OLD.json
(prints the change; exit 1 on a regression beyond --threshold).
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Benchmarks against a baseline run beside them.")

JSON_OPT = typer.Option(None, "--json", help="write the figures here")
SAVE_OPT = typer.Option(False, "--save", help="also keep them under perf/results/<machine>/")
REPORT_OPT = typer.Option(None, "--report", help="add a section to DIR/report.html")
COMPARE_OPT = typer.Option(None, "--compare", help="an earlier --json result to compare with")
THRESHOLD_OPT = typer.Option(0.10, help="regression threshold for --compare (0.10 = 10%)")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="bench")


def _load_old(compare: Path | None) -> dict | None:
    """Read --compare before measuring anything: a bad file fails in a second, not after the run."""
    from minikf.bench import report as bench_report

    return bench_report.load_result(compare) if compare else None


def _finish(name: str, figures: dict, json_path: Path | None, save: bool, report: Path | None,
            compare: Path | None, threshold: float) -> None:
    """The common tail: metadata, --json, --save, --report, then --compare (may exit 1)."""
    import json

    from minikf.bench import report as bench_report
    from minikf.runtime import files
    from minikf.runtime.errors import MinikfError

    old = _load_old(compare)
    result = bench_report.finish(name, figures)
    if json_path:
        files.write_text(json_path, json.dumps(result, indent=2))
        typer.echo(f"wrote {json_path}")
    if save:
        typer.echo(f"saved {bench_report.save(result)}")
    if report:
        typer.echo(f"report: {bench_report.write_report(result, report)}")
    if old is not None:
        changes = bench_report.compare(result, old, threshold)
        typer.echo(f"\nagainst {compare} ({old.get('date', '?')}), threshold {threshold:.0%}:")
        typer.echo(f"{'figure':36} {'old':>12} {'new':>12} {'change':>11}")
        for change in changes:
            typer.echo(change.line())
        worse = [c.figure for c in changes if c.regression]
        if worse:
            raise MinikfError(f"regression beyond {threshold:.0%}: {', '.join(worse)}", 1)


@app.command("train")
def bench_train_cmd(
    workers: str = typer.Option("1,2,N", help="worker counts for the scaling figure; N: the cores "
                                              "this process may run on"),
    epochs: int = typer.Option(1, help="epochs per measurement"),
    batch_size: int = typer.Option(0, help="the job's batch, shared out among its workers "
                                           "(0: the journey's)"),
    device: str = typer.Option("auto", help="cpu | cuda | auto (cuda where present)"),
    resnet_steps: int = typer.Option(30, help="timed steps of the ResNet-50 figure (CUDA only)"),
    rounds: int = typer.Option(2, help="baseline and harness alternate this many times; best counts"),
    json_path: Path | None = JSON_OPT,
    save: bool = SAVE_OPT,
    report: Path | None = REPORT_OPT,
    compare: Path | None = COMPARE_OPT,
    threshold: float = THRESHOLD_OPT,
) -> None:
    """Images/s of the journey's training step vs a bare PyTorch loop, scaling, peak RSS."""
    _load_old(compare)
    import os
    import tempfile

    import torch

    from minikf.bench.train import bench_train
    from minikf.runtime.errors import MinikfError
    from minikf.workload import fashion_data

    if device not in ("cpu", "cuda", "auto"):
        raise MinikfError(f"--device: expected cpu, cuda or auto, got {device!r}", 2)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        counts = sorted({cores if w.strip() == "N" else int(w) for w in workers.split(",") if w.strip()})
    except ValueError:
        raise MinikfError(f"--workers: expected numbers like 1,2 (N: {cores} cores), got {workers!r}",
                          2) from None
    if rounds < 1:
        raise MinikfError("--rounds must be >= 1", 2)
    if not counts or min(counts) < 1:
        raise MinikfError(f"--workers: expected positive numbers like 1,2, got {workers!r}", 2)
    if device == "cuda" and not torch.cuda.is_available():
        typer.echo("no GPU present: --device cuda runs the CPU part only (no ResNet-50 figure)")
    sample = Path(__file__).parent.parent.parent / "data" / "fashion-mnist-sample"
    with tempfile.TemporaryDirectory(prefix="minikf-bench-") as tmp:
        raw, data = Path(tmp) / "raw", Path(tmp) / "data"
        fashion_data.download(raw, [str(sample)], dict(fashion_data.SAMPLE_FILES))
        fashion_data.preprocess(raw, data)
        figures = bench_train(data, counts, epochs=epochs, batch_size=batch_size or None,
                              device=device, resnet_steps=resnet_steps, rounds=rounds)
    typer.echo(f"batch {figures['batch_size']} per step of the job, {figures['schedule']} rate "
               f"{figures['lr']:g}{', augmented' if figures['augment'] else ''}; load average "
               f"{', '.join(f'{v:.1f}' for v in figures['load_avg_rounds'])} at the rounds' starts")
    if figures.get("note") and device != "cuda":
        typer.echo(figures["note"])

    def mib(v: float | None) -> str:
        return f"{v:.0f}" if v is not None else "?"

    typer.echo(f"{'measure':30} {'images/s':>10} {'peak RSS MiB/worker':>20}")
    typer.echo(f"{'bare PyTorch loop (baseline)':30} {figures['baseline_images_per_s']:>10.0f} "
               f"{mib(figures['baseline_peak_rss_mb']):>20}")
    typer.echo(f"{'minikf train worker':30} {figures['harness_images_per_s']:>10.0f} "
               f"{mib(figures['harness_peak_rss_mb']):>20}")
    for n, ips in figures["scaling"].items():
        rss = ", ".join(mib(v) for v in figures["worker_peak_rss_mb"][n])
        typer.echo(f"{f'{n} worker(s)':30} {ips:>10.0f} {rss:>20}")
    typer.echo(f"harness overhead: {figures['harness_overhead_pct']:.1f}% of the baseline (target <= 5%)")
    for n, eff in figures["scaling_efficiency"].items():
        cpu = figures["cpu_efficiency"].get(n)
        cpu_text = f", CPU efficiency {cpu:.2f} (CPU per image of 1 worker / of {n})" if cpu else ""
        median = figures.get("scaling_efficiency_median", {}).get(n)
        paired = f" (each round's own: median {median:.2f})" if median is not None and \
            len(figures["scaling_rounds"][n]) > 1 else ""
        typer.echo(f"scaling 1->{n} workers: {eff:.2f} efficiency{paired}{cpu_text}")
    if figures.get("profile_2"):
        prof, lost = figures["profile_2"], (1 - figures["scaling_efficiency_2"]) * 100
        ar, how = prof["allreduce"]["model"], prof["allreduce"].get("exchange", "gloo")
        gloo = prof.get("gloo_allreduce", prof["allreduce"])["model"]
        beside = f"; gloo's: {gloo['wall_ms']:.2f} ms" if how != "gloo" else ""
        typer.echo(f"where 1->2 loses {lost:.0f}%: each rank's step is {prof['images_per_rank_step']} "
                   f"images, {prof['smaller_step_cost_pct']:.0f}% slower per image than the whole batch "
                   f"(bare loop); the all-reduce ({how}) is {ar['wall_ms']:.2f} ms a step "
                   f"({ar['cpu_ms']:.2f} ms CPU; {prof['allreduce_fixed_share_pct']:.0f}% of it fixed "
                   f"per call{beside}), {prof['allreduce_share_of_step_pct']:.0f}% of the 2-worker "
                   "step; the rest is lock-step waiting, the cores' shared cache and clock, epoch ends")
    if figures.get("machine_ceiling_2"):
        typer.echo(f"two bare loops at once, a core each, never talking: "
                   f"{figures['two_apart_images_per_s']:.0f} images/s, {figures['machine_ceiling_2']:.2f} "
                   f"of twice one (the most 1->2 can reach here); the 2-worker job made "
                   f"{figures['scaling_2_of_two_apart']:.2f} of theirs (each round's own: median "
                   f"{figures['scaling_2_of_two_apart_median']:.2f})")
    typer.echo(f"workers: auto here now: {figures['auto']['reason']}")
    if figures.get("resnet50"):
        r = figures["resnet50"]
        typer.echo(f"ResNet-50 synthetic on {r['gpu']}: {r['images_per_s']:.0f} images/s "
                   f"({r['precision']}, batch {r['batch']})")
    _finish("train", figures, json_path, save, report, compare, threshold)


@app.command("serve")
def bench_serve_cmd(
    users: int = typer.Option(16, help="concurrent locust users (closed loop, no think time)"),
    duration: float = typer.Option(10.0, help="measured seconds per target per round"),
    warmup: float = typer.Option(1.0, help="unmeasured seconds before each measurement"),
    rounds: int = typer.Option(3, help="rounds; each loads every target once, in turn"),
    model: Path | None = typer.Option(None, help="a model dir (default: FashionCNN, fixed weights)"),
    burst_users: int = typer.Option(200, help="then this many connections at once against minikf and "
                                              "stock, honouring 503 Retry-After (0: no burst)"),
    json_path: Path | None = JSON_OPT,
    save: bool = SAVE_OPT,
    report: Path | None = REPORT_OPT,
    compare: Path | None = COMPARE_OPT,
    threshold: float = THRESHOLD_OPT,
) -> None:
    """Throughput and latency: minikf server vs stock KServe vs a trivial handler (ceiling)."""
    _load_old(compare)
    import importlib.util

    from minikf.bench.serve import bench_serve
    from minikf.runtime.errors import MinikfError

    # Looked up, not imported: importing locust monkey-patches this process with gevent.
    if importlib.util.find_spec("locust") is None:
        raise MinikfError("bench serve needs locust: pip install 'locust>=2.20'", 2)
    if users < 1 or duration <= 0 or rounds < 1 or warmup < 0 or burst_users < 0:
        raise MinikfError("--users and --rounds must be >= 1, --duration > 0, --warmup and "
                          "--burst-users >= 0", 2)
    if model is not None and not (model / "model.pt").is_file():
        raise MinikfError(f"--model {model}: no model.pt there", 2)
    typer.echo(f"{rounds} round(s) x 3 targets x {warmup:g}+{duration:g}s, {users} users ...")
    figures = bench_serve(users=users, duration=duration, warmup=warmup, rounds=rounds, model_dir=model,
                          burst_users=burst_users)
    typer.echo(f"pinning: {figures['pinning']}")
    names = {"minikf": "(a) minikf server", "stock": "(b) stock KServe", "ceiling": "(c) trivial handler"}
    typer.echo(f"{'target':22} {'rps':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>7} "
               f"{'peak RSS MiB':>13}")
    for key, t in figures["targets"].items():
        rss = f"{t['peak_rss_mb']:.0f}" if t.get("peak_rss_mb") is not None else "?"
        typer.echo(f"{names[key]:22} {t['rps']:>8.0f} {t['p50_ms']:>7.0f} {t['p95_ms']:>7.0f} "
                   f"{t['p99_ms']:>7.0f} {t['errors']:>7} {rss:>13}")
    ab, p99, ac = (figures.get(k) for k in ("ratio_rps_minikf_vs_stock", "ratio_p99_minikf_vs_stock",
                                             "ratio_rps_minikf_vs_ceiling"))
    if ab is not None and p99 is not None and ac is not None:
        typer.echo(f"a/b throughput {ab:.2f}x (target >= 2x), p99 a/b {p99:.2f} (target <= 1); "
                   f"a/c throughput {ac:.2f}")
    if figures.get("burst"):
        burst = figures["burst"]
        typer.echo(f"\nburst: {burst['users']} connections for {burst['duration_s']:g}s, clients honouring "
                   f"503 Retry-After")
        typer.echo(f"{'target':22} {'answers/s':>9} {'200/s':>7} {'503s':>6} {'p50 ms':>7} {'p99 ms':>7} "
                   f"{'p99 200 ms':>10} {'errors':>7}")
        for key, t in burst["targets"].items():
            typer.echo(f"{names[key]:22} {t['rps']:>9.0f} {t['ok_rps']:>7.0f} {t['rejected_503']:>6} "
                       f"{t['p50_ms']:>7.0f} {t['p99_ms']:>7.0f} {t['p99_ok_ms']:>10.0f} {t['errors']:>7}")
    _finish("serve", figures, json_path, save, report, compare, threshold)


@app.command("journey")
def bench_journey_cmd(
    param: list[str] = typer.Option([], "--param", "-p", help="scenario param key=value, repeatable"),
    results: Path | None = typer.Option(None, help="keep the journey's own results here"),
    scale_epochs: int = typer.Option(0, help="run it again at this many epochs: how the overhead's "
                                             "share falls as the compute grows (0 = not)"),
    rounds: int = typer.Option(2, help="the journey and the bare script alternate this many times; "
                                       "the best of each counts"),
    json_path: Path | None = JSON_OPT,
    save: bool = SAVE_OPT,
    report: Path | None = REPORT_OPT,
    compare: Path | None = COMPARE_OPT,
    threshold: float = THRESHOLD_OPT,
) -> None:
    """The whole Fashion-MNIST journey on local: time per step and the platform overhead."""
    _load_old(compare)
    from minikf.bench.journey import bench_journey
    from minikf.runtime.errors import MinikfError

    params = {}
    for item in param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise MinikfError(f"--param {item!r}: expected key=value", 2)
        params[key] = value
    if scale_epochs < 0:
        raise MinikfError("--scale-epochs must be >= 0", 2)
    if rounds < 1:
        raise MinikfError("--rounds must be >= 1", 2)
    typer.echo(f"{rounds} round(s): `minikf run fashion-mnist` in a fresh process, then the same work "
               "as one bare script ...")
    try:
        figures = bench_journey(params, results, scale_epochs or None, rounds)
    except RuntimeError as exc:
        raise MinikfError(" ".join(str(exc).split())[:400], 1) from None
    typer.echo(f"{'step':12} {'seconds':>8} {'workload':>9} {'overhead':>9}")
    for row in figures["steps"]:
        typer.echo(f"{row['name']:12} {row['seconds']:>8.2f} {row['workload_s']:>9.2f} "
                   f"{row['overhead_s']:>9.2f}")
    typer.echo(f"{'outside steps':12} {figures['outside_steps_s']:>8.2f} {0:>9.2f} "
               f"{figures['outside_steps_s']:>9.2f}")
    bare = figures["bare"]
    typer.echo(f"bare script, same work in one process ({bare['threads']} PyTorch thread(s)): wall "
               f"{bare['wall_s']:.1f}s = import torch {bare['import_s']:.1f}s + data {bare['data_s']:.1f}s "
               f"+ train {bare['train_s']:.1f}s + evaluate, serve, predict "
               f"{bare['evaluate_s'] + bare['serve_s'] + bare['predict_s']:.1f}s; accuracy "
               f"{bare['accuracy']:.3f} (journey {figures['accuracy']:.3f})")
    met = "met" if figures["ratio_to_bare"] <= figures["target_ratio_to_bare"] else "not met"
    rounds_text = ", ".join(f"{j:.1f}/{b:.1f}s" for j, b in zip(figures["journey_wall_s_rounds"],
                                                                  figures["bare_wall_s_rounds"], strict=True))
    loads = ", ".join(f"{a:.1f}-{b:.1f}" for a, b in figures["load_avg_rounds"])
    typer.echo(f"journey / bare script: {figures['ratio_to_bare']:.2f}x (best of {figures['rounds']} "
               f"each; target <= {figures['target_ratio_to_bare']:g}: {met}); rounds journey/bare "
               f"{rounds_text}; load average {loads}")
    typer.echo(f"the journey's training: {figures['workers']} worker(s): {figures['workers_reason']}")
    typer.echo(f"wall {figures['wall_s']:.1f}s = workload {figures['workload_s']:.1f}s + platform overhead "
               f"{figures['overhead_s']:.1f}s ({figures['overhead_pct']:.0f}% of the wall, target <= 20%); "
               f"largest: {', '.join(figures['largest_overheads'])}")
    met = "met" if figures["minikf_overhead_pct"] <= 20 else "not met"
    typer.echo(f"of it, PyTorch loading before rank 0's first line of the job: "
               f"{figures['framework_on_path_s']:.1f}s; minikf's own overhead: "
               f"{figures['minikf_overhead_s']:.1f}s = {figures['minikf_overhead_pct']:.0f}% of the "
               f"wall (target <= 20%: {met})")
    typer.echo(f"for scale: a fresh PyTorch process pays {figures['framework_startup_s']:.1f}s "
               f"(import torch + torch._dynamo, measured beside) before its first step, so the same "
               f"compute run bare would already be {figures['bare_overhead_pct']:.0f}% start-up")
    typer.echo(f"at this size ({figures['train_images']} training images, {figures['epochs']} epochs) the "
               f"overhead is mostly fixed start-up; at the same overhead it is 20% of a journey whose "
               f"workload is >= {figures['workload_s_for_target_pct']:.0f}s")
    if figures.get("scaled"):
        big = figures["scaled"]
        typer.echo(f"at {big['epochs']} epochs: wall {big['wall_s']:.1f}s = workload "
                   f"{big['workload_s']:.1f}s + overhead {big['overhead_s']:.1f}s "
                   f"({big['overhead_pct']:.0f}%)")
        if "fixed_overhead_s" in figures:
            typer.echo(f"overhead = {figures['fixed_overhead_s']:.1f}s fixed + "
                       f"{figures['overhead_per_epoch_s']:.2f}s per epoch (from the two runs; a per-epoch "
                       f"part near 0 or below it is within this machine's noise)")
    _finish("journey", figures, json_path, save, report, compare, threshold)
