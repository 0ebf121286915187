"""`azfinetune submit SPEC`: check, build and submit once (a repeat returns the same job), then say what's next."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from azfinetune.cli._app import Application
from azfinetune.cli._foundry_flags import FoundryFlags, foundry_next_step_flags, foundry_options, job_client
from azfinetune.cli._kaito_flags import KaitoFlags, kaito_next_step_flags, kaito_options
from azfinetune.cli.jobs import WorkspaceFlags, echo_json, next_steps, styled_status, workspace_options

if TYPE_CHECKING:
    from azfinetune.client import JobService, SubmittedJob


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check and build the job and show it; send nothing.")
@click.option("--wait", is_flag=True, help="Wait until the job finishes (exit 1 if it fails).")
@click.option(
    "--timeout", type=float, default=24 * 3600.0, show_default=True, help="Seconds --wait waits at most."
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a spec key, e.g. training.epochs=1.",
)
@click.option(
    "--new-run",
    is_flag=True,
    help="Submit the same spec again as a new job (a timestamp suffix); pipeline steps run again (force_rerun).",
)
@click.option(
    "--allow-retired", is_flag=True, help="Submit even if Azure retired the model's serverless offer."
)
@click.option(
    "--resume-from",
    "resume_from",
    metavar="JOB",
    help="Start from the newest complete checkpoint of JOB (a failed, cancelled or finished command or pipeline "
    "job with training.save_steps): sets training.resume_from, so the new job has its own name.",
)
@workspace_options
@foundry_options
@kaito_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--allow-no-fit",
    is_flag=True,
    help="Accept a job the planner says cannot fit in GPU memory even optimistically (an error otherwise).",
)
@click.pass_obj
def submit(
    app: Application,
    spec: str,
    dry_run: bool,
    wait: bool,
    timeout: float,
    overrides: tuple[str, ...],
    new_run: bool,
    allow_retired: bool,
    workspace: WorkspaceFlags,
    foundry: FoundryFlags,
    kaito: KaitoFlags,
    as_json: bool,
    allow_no_fit: bool = False,
    resume_from: str | None = None,
) -> None:
    """Submit SPEC to Azure ML (target.kind foundry: to Azure AI Foundry). The job's name comes from the spec and
    its data, so submitting the same spec again returns the existing job instead of starting a second one (use
    --new-run to start another)."""
    from azfinetune.targets import ALLOW_NO_FIT

    ALLOW_NO_FIT.set(allow_no_fit)
    from azfinetune.spec import load_spec

    if resume_from is not None:
        # Quoted: a job name of digits stays a name.
        overrides = (*overrides, f"training.resume_from={json.dumps(resume_from)}")
    if _is_job_file(spec):
        if resume_from is not None:
            raise click.UsageError("--resume-from takes a spec, not an Azure ML job file")
        workspace_client = workspace.client()
        result = workspace_client.submit_job_file(spec, overrides=list(overrides), dry_run=dry_run)
        _report(
            app, workspace_client, result, spec, dry_run=dry_run, wait=wait, timeout=timeout, as_json=as_json
        )
        return
    loaded = load_spec(spec, overrides=list(overrides))
    if new_run and "force_rerun" in type(loaded.target).model_fields:
        # A deliberate new run: every pipeline step runs again instead of reusing an identical earlier one.
        loaded.target.force_rerun = True  # type: ignore[union-attr]
    client = job_client(workspace, foundry, spec=loaded, kaito=kaito)
    run_suffix = datetime.now(timezone.utc).strftime("r%Y%m%d%H%M%S") if new_run else None
    if not as_json and not dry_run:
        with app.err.status(f"submitting {escape(loaded.name)}…"):
            result = client.submit(loaded, run_suffix=run_suffix, allow_retired=allow_retired)
    else:
        result = client.submit(loaded, dry_run=dry_run, run_suffix=run_suffix, allow_retired=allow_retired)
    for warning in result.warnings:
        app.issue(warning)
    _report(app, client, result, spec, dry_run=dry_run, wait=wait, timeout=timeout, as_json=as_json)


def _report(
    app: Application,
    client: JobService,
    result: SubmittedJob,
    spec_path: str,
    *,
    dry_run: bool,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """What the submit did: the dry run's job, or the submitted job (after waiting for it, with --wait)."""
    if dry_run:
        _print_dry_run(app, result, spec_path=spec_path, as_json=as_json)
        return
    if wait:
        result.status = _wait(app, client, result.name, timeout=timeout, quiet=as_json)
    if as_json:
        echo_json(result.to_dict())
        return
    _print_submitted(
        app,
        result,
        waited=wait,
        flags=foundry_next_step_flags(client) or kaito_next_step_flags(client).strip(),
    )


def _is_job_file(path: str) -> bool:
    """An Azure ML job YAML (`az ml job create -f` schema, e.g. jobs/pipelines/*.yaml) rather than a spec."""
    from azfinetune.errors import SpecError
    from azfinetune.spec import load_yaml_file

    try:
        data = load_yaml_file(Path(path))  # decoded and bounded as load_spec does
    except SpecError:
        return False  # load_spec reports it with its position
    if not isinstance(data, dict) or "model" in data:
        return False
    schema = str(data.get("$schema", ""))
    return schema.endswith("Job.schema.json") or data.get("type") in ("pipeline", "command", "sweep")


def _wait(app: Application, client: JobService, name: str, *, timeout: float, quiet: bool) -> str | None:
    if quiet:
        return client.wait(name, timeout=timeout).status
    with app.err.status(f"waiting for {escape(name)}…") as spinner:

        def show(status: str | None) -> None:
            spinner.update(f"waiting for {escape(name)}: {styled_status(status)}")

        info = client.wait(name, timeout=timeout, on_status=show)
    return info.status


def _print_submitted(app: Application, result: SubmittedJob, *, waited: bool, flags: str = "") -> None:
    uploaded = [u for u in result.uploads if u.uploaded]
    if uploaded:
        app.err.print(f"uploaded {len(uploaded)} data file{'s' if len(uploaded) != 1 else ''}")
    if result.created:
        app.out.print(
            f"[green]✓[/green] submitted {escape(result.name)} ({escape(result.kind)} job, "
            f"{styled_status(result.status)})"
        )
    else:
        app.out.print(
            f"[green]✓[/green] already submitted: {escape(result.name)} ({styled_status(result.status)}) — "
            "the same spec and data give the same job; --new-run starts another"
        )
    if result.studio_url:
        app.out.print(f"Studio:           {escape(result.studio_url)}")
    if not waited:
        next_steps(app, result.name, flags=flags)
    elif result.status != "Completed":
        app.out.print(f"job {escape(result.name)} ended {styled_status(result.status)}")
        raise SystemExit(1)


def _print_dry_run(app: Application, result: SubmittedJob, *, spec_path: str, as_json: bool) -> None:
    body = _rest_body(result.job, kind=result.kind)
    if as_json:
        echo_json({**result.to_dict(), "job": body})
        return
    app.out.print(
        f"[green]✓[/green] dry run: {escape(result.name)} ({escape(result.kind)} job) — checked and built, nothing sent"
    )
    for upload in result.uploads:
        app.out.print(
            f"  would upload data.{escape(upload.role)}: {escape(upload.local_path)} (unless already there)"
        )
    if body is not None:
        click.echo(json.dumps(body, indent=2, sort_keys=True, default=str))
    from azfinetune.cli._hints import command_line

    app.out.print(f"To submit it:     {escape(command_line(drop=('--dry-run',)))}", soft_wrap=True)


def _rest_body(job: Any, *, kind: str) -> dict[str, Any] | None:
    """The REST body the job would be sent as (local paths relative to this folder); None if it cannot be shown."""
    from azfinetune.errors import AzFineTuneError
    from azfinetune.targets import get_target, rest_body

    target = get_target(kind)
    if target.service != "azureml":  # another service's requests, as its target exports them
        document: dict[str, Any] = json.loads(target.export(job, base_dir=Path.cwd(), format="json"))
        return document

    try:
        return rest_body(job, base_dir=Path.cwd())
    except (AzFineTuneError, AttributeError, TypeError, ValueError):
        try:
            body: dict[str, Any] = job._to_rest_object().as_dict()
        except Exception:  # the summary above is still useful without the body
            return None
        return body
