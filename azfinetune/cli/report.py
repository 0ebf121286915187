"""`azfinetune report RUN`: the metrics table and loss plot of a local run folder (or an Azure ML job)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from azfinetune.cli._app import Application
from azfinetune.cli._foundry_flags import FoundryFlags, foundry_options, is_foundry, print_foundry_report
from azfinetune.cli.jobs import WorkspaceFlags, job_workspace_options
from azfinetune.errors import UserInputError

_ROWS = (
    ("train_loss", "train loss", "{:.4f}"),
    ("eval_loss", "eval loss", "{:.4f}"),
    ("train_runtime", "runtime (s)", "{:.1f}"),
    ("train_tokens", "training tokens", "{:,.0f}"),
    ("tokens_per_second", "tokens/s", "{:,.0f}"),
    ("peak_memory_mb", "peak memory (MB)", "{:,.0f}"),
    ("trainable_parameters", "trainable parameters", "{:,.0f}"),
    ("total_parameters", "total parameters", "{:,.0f}"),
)


def metrics_table(metrics: dict[str, Any], title: str) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, label, fmt in _ROWS:
        value = metrics.get(key)
        if isinstance(value, int | float):
            table.add_row(label, fmt.format(value))
    return table


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@job_workspace_options
@foundry_options
@click.pass_obj
def report(
    app: Application, run_ref: str, as_json: bool, workspace: WorkspaceFlags, foundry: FoundryFlags
) -> None:
    """Show a run's metrics: a local run folder (outputs/<job>/<run-id>), an Azure ML job name, or a Foundry job
    id (ftjob-..., with its checkpoints)."""
    if not Path(run_ref).exists() and is_foundry(foundry, name=run_ref):
        print_foundry_report(app, foundry.client().report(run_ref), as_json=as_json)
        return
    if not Path(run_ref).exists() and _looks_like_path(run_ref):
        _no_local_run(run_ref)
    if Path(run_ref).exists():
        from azfinetune.local import read_run

        metrics, plot = read_run(Path(run_ref))
        title = run_ref
    else:
        from azfinetune.local import plot_losses
        from azfinetune.metrics import job_metrics

        client = workspace.client()
        metrics = job_metrics(client.ml_client, client.credential, run_ref)
        folder = Path("outputs") / run_ref
        folder.mkdir(parents=True, exist_ok=True)
        plot = plot_losses(metrics, folder / "loss.png")
        title = run_ref
    if as_json:
        app.out.print_json(json.dumps({"metrics": metrics, "plot": str(plot) if plot else None}))
        return
    if "train_loss" not in metrics and "loss" in metrics:
        metrics = {**metrics, "train_loss": metrics["loss"]}
    app.out.print(metrics_table(metrics, title))
    if plot is not None:
        app.out.print(f"loss plot: {plot}", markup=False)


def _looks_like_path(run_ref: str) -> bool:
    """A folder path (outputs/job/run, ./x, x/) rather than an Azure ML job name (which has no '/')."""
    return "/" in run_ref or "\\" in run_ref or run_ref.startswith((".", "~"))


def _local_runs(root: Path) -> list[Path]:
    """Run folders (a command.json in them) under `root`, at most three levels down."""
    runs: set[Path] = set()
    if not root.is_dir():
        return []
    for pattern in ("command.json", "*/command.json", "*/*/command.json", "*/*/*/command.json"):
        runs.update(found.parent for found in root.glob(pattern))
    return sorted(runs)


def _no_local_run(run_ref: str) -> None:
    """`report outputs/nope`: no local run there; name the nearest ones (closest name first)."""
    import difflib

    wanted = Path(run_ref)
    root = next((p for p in [wanted, *wanted.parents] if p != Path(".") and p.is_dir()), Path("outputs"))
    runs = [str(run) for run in _local_runs(root)] or [str(run) for run in _local_runs(Path("outputs"))]
    nearest = difflib.get_close_matches(run_ref, runs, n=5, cutoff=0.0) if runs else []
    hint = (
        "nearest local runs: " + ", ".join(nearest)
        if nearest
        else "no local runs here yet: `azfinetune run SPEC --local` (or `azfinetune demo`) makes one"
    )
    raise UserInputError(f"no local run at {run_ref}: the folder does not exist", hint=hint)
