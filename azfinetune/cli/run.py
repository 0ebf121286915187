"""`azfinetune run SPEC --local`: the spec's training on this machine, with live progress."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from azfinetune.cli._app import Application

if TYPE_CHECKING:
    from azfinetune.local import LocalRun, LocalRunPlan
    from azfinetune.spec import FineTuneSpec


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option(
    "--local", "local", is_flag=True, required=True, help="Run on this machine (the local backend)."
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec key.")
@click.option(
    "--outputs", type=click.Path(file_okay=False, path_type=Path), help="Outputs root (default ./outputs)."
)
@click.option("--allow-download", is_flag=True, help="Let the run download an hf: model that is not cached.")
@click.option("--dry-run", is_flag=True, help="Show the command line and folders; run nothing.")
@click.pass_obj
def run(
    app: Application,
    spec_path: str,
    local: bool,
    overrides: tuple[str, ...],
    outputs: Path | None,
    allow_download: bool,
    dry_run: bool,
) -> None:
    """Run a spec's training locally — the same command line Azure ML would run (any MaaP spec)."""
    from azfinetune.spec import load_spec
    from azfinetune.targets import as_local, check_spec

    report = check_spec(as_local(load_spec(spec_path, overrides=list(overrides))))
    for warning in report.warnings:
        app.issue(warning)
    report.raise_for_errors()
    run_spec(app, report.spec, outputs=outputs, allow_download=allow_download, dry_run=dry_run)


def run_spec(
    app: Application, spec: FineTuneSpec, *, outputs: Path | None, allow_download: bool, dry_run: bool = False
) -> LocalRun | None:
    """Run (or, dry, show) a checked spec locally and print where everything is; returns the LocalRun."""
    from azfinetune.cli._progress import TrainingProgress
    from azfinetune.local import prepare_local_run, run_local

    if dry_run:
        plan = prepare_local_run(spec, outputs_root=outputs, allow_download=allow_download)
        plan.run_dir.rmdir()
        app.out.print(" ".join(plan.command), markup=False)
        app.out.print(f"cwd: {plan.cwd}\noutputs: {plan.run_dir}", markup=False)
        return None

    def started(plan: LocalRunPlan) -> None:
        app.out.print(f"run folder: {escape(str(plan.run_dir))}")

    with TrainingProgress(app.out) as progress:
        result = run_local(
            spec,
            outputs_root=outputs,
            allow_download=allow_download,
            on_progress=progress.update,
            on_start=started,
        )
    metrics = result.metrics
    app.out.print(
        f"[green]✓[/green] trained {spec.name}: train_loss {metrics.get('train_loss', float('nan')):.4f}"
        + (f", eval_loss {metrics['eval_loss']:.4f}" if metrics.get("eval_loss") is not None else "")
        + (f", {metrics['tokens_per_second']:.0f} tokens/s" if metrics.get("tokens_per_second") else "")
    )
    app.out.print(f"  adapter:   {escape(str(result.adapter_dir))}")
    for role in ("merged_model", "mlflow_model"):
        if role in result.plan.outputs:
            app.out.print(f"  {role + ':':<10} {escape(result.plan.outputs[role])}")
    app.out.print(f"  log:       {escape(str(result.plan.log_file))}")
    if result.plot is not None:
        app.out.print(f"  loss plot: {escape(str(result.plot))}")
    app.out.print(f"To see the metrics again: azfinetune report {escape(shlex.quote(str(result.run_dir)))}")
    return result
