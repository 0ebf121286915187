"""`azfinetune cancel NAME`: ask Azure ML to cancel a job and show where it stands."""

from __future__ import annotations

import click
from rich.markup import escape

from azfinetune.cli._app import Application
from azfinetune.cli._foundry_flags import FoundryFlags, foundry_options, job_client
from azfinetune.cli._kaito_flags import KaitoFlags, kaito_options
from azfinetune.cli.jobs import WorkspaceFlags, echo_json, job_workspace_options, styled_status


@click.command()
@click.argument("name")
@job_workspace_options
@foundry_options
@kaito_options
@click.option("--json", "as_json", is_flag=True, help="Print the job after the request as JSON.")
@click.pass_obj
def cancel(
    app: Application,
    name: str,
    workspace: WorkspaceFlags,
    foundry: FoundryFlags,
    kaito: KaitoFlags,
    as_json: bool,
) -> None:
    """Cancel job NAME (a finished job stays as it is)."""
    client = job_client(workspace, foundry, name=name, kaito=kaito)
    if as_json:
        echo_json(client.cancel(name).to_dict())
        return
    with app.err.status(f"canceling {escape(name)}…"):
        info = client.cancel(name)
    app.out.print(f"[green]✓[/green] cancel requested: {escape(name)} ({styled_status(info.status)})")
