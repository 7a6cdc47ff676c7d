"""`minikf bench ...`: benchmarks, each against a baseline measured beside it in the same run."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Benchmarks against a baseline run beside them.")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="bench")


@app.command("train")
def bench_train_cmd(
    workers: str = typer.Option("1,2", help="worker counts for the scaling figure"),
    epochs: int = typer.Option(1, help="epochs per measurement"),
    batch_size: int = typer.Option(64),
    json_path: Path | None = typer.Option(None, "--json", help="write the figures here"),
) -> None:
    """Images/s of the journey's training step vs a bare PyTorch loop, and the scaling."""
    import json
    import tempfile

    from minikf.bench.train import bench_train
    from minikf.workload import fashion_data

    counts = [int(w) for w in workers.split(",") if w.strip()]
    sample = Path(__file__).parent.parent.parent / "data" / "fashion-mnist-sample"
    with tempfile.TemporaryDirectory(prefix="minikf-bench-") as tmp:
        raw, data = Path(tmp) / "raw", Path(tmp) / "data"
        fashion_data.download(raw, [str(sample)], dict(fashion_data.SAMPLE_FILES))
        fashion_data.preprocess(raw, data)
        figures = bench_train(data, counts, epochs=epochs, batch_size=batch_size)
    if figures.get("note"):
        typer.echo(figures["note"])
    typer.echo(f"{'measure':28} {'images/s':>10}")
    typer.echo(f"{'bare PyTorch loop (baseline)':28} {figures['baseline_images_per_s']:>10.0f}")
    typer.echo(f"{'minikf train worker':28} {figures['harness_images_per_s']:>10.0f}")
    for n, ips in figures["scaling"].items():
        typer.echo(f"{f'{n} worker(s)':28} {ips:>10.0f}")
    typer.echo(f"harness overhead: {figures['harness_overhead_pct']:.1f}% of the baseline")
    if json_path:
        json_path.write_text(json.dumps(figures, indent=2))
        typer.echo(f"wrote {json_path}")
