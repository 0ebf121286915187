"""`azfinetune list`: the jobs azfinetune made in the workspace, newest first, as a table or JSON."""

from __future__ import annotations

import click

from azfinetune.cli._app import Application
from azfinetune.cli._foundry_flags import FoundryFlags, foundry_options, job_client
from azfinetune.cli._kaito_flags import KaitoFlags, kaito_options
from azfinetune.cli.jobs import WorkspaceFlags, echo_json, job_table, job_workspace_options, parse_since


@click.command(name="list")
@click.option(
    "--status", "statuses", multiple=True, metavar="STATUS", help="Only jobs in this status (repeatable)."
)
@click.option("--spec", "spec_name", metavar="NAME", help="Only jobs made from the spec with this name.")
@click.option(
    "--since", metavar="WHEN", help="Only jobs created since: 30m, 12h, 2d, 1w or a date (2025-06-01)."
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many jobs."
)
@click.option("--all", "all_jobs", is_flag=True, help="Every job in the workspace, not only azfinetune's.")
@job_workspace_options
@foundry_options
@kaito_options
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as a JSON list.")
@click.pass_obj
def list_jobs(
    app: Application,
    statuses: tuple[str, ...],
    spec_name: str | None,
    since: str | None,
    limit: int,
    all_jobs: bool,
    workspace: WorkspaceFlags,
    foundry: FoundryFlags,
    kaito: KaitoFlags,
    as_json: bool,
) -> None:
    """List jobs, newest first."""
    cutoff = parse_since(since) if since else None
    client = job_client(workspace, foundry, kaito=kaito)
    infos = client.list(
        status=statuses or None, spec_name=spec_name, since=cutoff, limit=limit, all_jobs=all_jobs
    )
    if as_json:
        echo_json([info.to_dict() for info in infos])
        return
    if not infos:
        app.err.print("no jobs found" + ("" if all_jobs else " (made by azfinetune; --all lists every job)"))
        return
    app.out.print(job_table(infos))
