"""`azfinetune status NAME`: a job's state, Studio link and (when it failed) the service's error."""

from __future__ import annotations

import click

from azfinetune.cli._app import Application
from azfinetune.cli._foundry_flags import FoundryFlags, foundry_options, job_client
from azfinetune.cli._kaito_flags import KaitoFlags, kaito_options
from azfinetune.cli.jobs import WorkspaceFlags, echo_json, job_details, job_workspace_options


@click.command()
@click.argument("name")
@job_workspace_options
@foundry_options
@kaito_options
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.pass_obj
def status(
    app: Application,
    name: str,
    workspace: WorkspaceFlags,
    foundry: FoundryFlags,
    kaito: KaitoFlags,
    as_json: bool,
) -> None:
    """Show the status of job NAME."""
    client = job_client(workspace, foundry, name=name, kaito=kaito)
    info = client.get(name)
    if as_json:
        echo_json(info.to_dict())
        return
    app.out.print(job_details(info))
