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
    from azfinetune.local_pipeline import LocalPipelinePlan, LocalPipelineRun, StepPlan, StepResult
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
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the previous run of this spec (stopped by Ctrl-C or a crash) from its newest complete "
    "checkpoint (training.save_steps makes them).",
)
@click.pass_obj
def run(
    app: Application,
    spec_path: str,
    local: bool,
    overrides: tuple[str, ...],
    outputs: Path | None,
    allow_download: bool,
    dry_run: bool,
    resume: bool = False,
) -> None:
    """Run a spec's training locally — the same command line Azure ML would run (any MaaP spec).

    A `pipeline` spec runs every step of its pipeline (validate, fine-tune, merge, evaluate, register decision)
    in order, with the command lines of the Azure ML pipeline job."""
    from azfinetune.spec import load_spec
    from azfinetune.targets import as_local, check_spec

    spec = load_spec(spec_path, overrides=list(overrides))
    if resume and spec.target.kind == "pipeline":
        from azfinetune.errors import LocalRunError

        raise LocalRunError(
            "--resume continues one training run; a pipeline spec's local run starts its steps afresh",
            hint="resume its training with a command spec of the same settings, or run it without --resume",
        )
    if spec.target.kind == "pipeline":
        # Checked as the pipeline it is (min_eval is its register step's gate); whether the model and the data
        # can be read here is checked when the steps are resolved (as for a local training run).
        report = check_spec(spec)
        for warning in report.warnings:
            app.issue(warning)
        report.raise_for_errors()
        run_pipeline_spec(app, report.spec, outputs=outputs, allow_download=allow_download, dry_run=dry_run)
        return
    report = check_spec(as_local(spec))
    for warning in report.warnings:
        app.issue(warning)
    report.raise_for_errors()
    run_spec(app, report.spec, outputs=outputs, allow_download=allow_download, dry_run=dry_run, resume=resume)


def run_spec(
    app: Application,
    spec: FineTuneSpec,
    *,
    outputs: Path | None,
    allow_download: bool,
    dry_run: bool = False,
    resume: bool = False,
) -> LocalRun | None:
    """Run (or, dry, show) a checked spec locally and print where everything is; returns the LocalRun.
    `resume`: continue the previous run of the spec from its newest complete checkpoint."""
    from azfinetune.cli._progress import TrainingProgress
    from azfinetune.local import prepare_local_run, run_local

    def resuming(plan: LocalRunPlan) -> None:
        if plan.resume is not None:
            app.out.print(
                f"resuming from {escape(plan.resume.path.name)} (step {plan.resume.step}) of the run "
                f"{escape(str(plan.resume.path.parent.parent))}"
            )

    if dry_run:
        plan = prepare_local_run(spec, outputs_root=outputs, allow_download=allow_download, resume=resume)
        plan.run_dir.rmdir()
        resuming(plan)
        app.out.print(" ".join(plan.command), markup=False)
        app.out.print(f"cwd: {plan.cwd}\noutputs: {plan.run_dir}", markup=False)
        return None

    def started(plan: LocalRunPlan) -> None:
        resuming(plan)
        app.out.print(f"run folder: {escape(str(plan.run_dir))}")

    with TrainingProgress(app.out) as progress:
        result = run_local(
            spec,
            outputs_root=outputs,
            allow_download=allow_download,
            on_progress=progress.update,
            on_start=started,
            on_export=lambda folder: app.out.print(
                f"exporting for ONNX Runtime into {escape(str(folder))} (and checking it against PyTorch)…"
            ),
            resume=resume,
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
    if result.onnx is not None:
        parity = result.onnx
        app.out.print(
            f"  onnx:      {escape(str(result.onnx_dir))} ({parity.get('precision')}, "
            f"{parity.get('execution_provider')}, adapters {parity.get('adapters')}; greedy-token agreement with "
            f"PyTorch {float(parity.get('token_agreement', 0.0)):.2f}, see parity.json)"
        )
    if result.plot is not None:
        app.out.print(f"  loss plot: {escape(str(result.plot))}")
    app.out.print(f"To see the metrics again: azfinetune report {escape(shlex.quote(str(result.run_dir)))}")
    return result


def run_pipeline_spec(
    app: Application, spec: FineTuneSpec, *, outputs: Path | None, allow_download: bool, dry_run: bool = False
) -> LocalPipelineRun | None:
    """Run (or, dry, show) every step of a checked pipeline spec locally, printing each step's status."""
    from azfinetune.cli._progress import TrainingProgress
    from azfinetune.local_pipeline import prepare_local_pipeline, run_local_pipeline

    if dry_run:
        plan = prepare_local_pipeline(spec, outputs_root=outputs, allow_download=allow_download)
        plan.run_dir.rmdir()
        for step in plan.steps:
            app.out.print(f"# {step.name} (cwd: {step.cwd})", markup=False)
            app.out.print(shlex.join(step.command), markup=False, soft_wrap=True)
        app.out.print(f"outputs: {plan.run_dir}", markup=False)
        return None

    progress = TrainingProgress(app.out)
    showing: list[TrainingProgress] = []  # the progress bar, while the fine-tune step runs

    def stop_progress() -> None:
        while showing:
            showing.pop().__exit__(None, None, None)

    def started(plan: LocalPipelinePlan) -> None:
        app.out.print(f"run folder: {escape(str(plan.run_dir))}")
        app.out.print(f"steps: {' → '.join(step.name for step in plan.steps)}")

    def step_started(step: StepPlan) -> None:
        app.out.print(f"[bold]▸ {step.name}[/bold]")
        if step.name == "finetune":
            showing.append(progress.__enter__())

    def step_done(result: StepResult) -> None:
        stop_progress()
        mark = "[green]✓[/green]" if result.status == "completed" else "[red]✗[/red]"
        app.out.print(f"{mark} {result.name} {result.status} in {result.seconds:.1f} s")

    try:
        result = run_local_pipeline(
            spec,
            outputs_root=outputs,
            allow_download=allow_download,
            on_start=started,
            on_step=step_started,
            on_step_done=step_done,
            on_progress=progress.update,
        )
    finally:
        stop_progress()
    metrics, evaluation = result.metrics, result.evaluation
    app.out.print(
        f"[green]✓[/green] pipeline {spec.name}: train_loss {metrics.get('train_loss', float('nan')):.4f}"
        + (
            f", evaluated {evaluation['eval_loss']:.4f} eval_loss"
            if evaluation.get("eval_loss") is not None
            else ""
        )
    )
    if result.decision is not None:
        decision = result.decision
        mark = "[green]✓[/green]" if decision.get("passed") else "[yellow]![/yellow]"
        app.out.print(
            f"{mark} register {escape(str(decision.get('model_name')))}: {escape(str(decision.get('reason')))}"
        )
    for role, folder in result.plan.outputs.items():
        app.out.print(f"  {role + ':':<13} {escape(folder)}")
    app.out.print(f"  {'logs:':<13} {escape(str(result.run_dir / 'logs'))}")
    if result.plot is not None:
        app.out.print(f"  {'loss plot:':<13} {escape(str(result.plot))}")
    app.out.print(f"To see the metrics again: azfinetune report {escape(str(result.run_dir))}")
    return result
