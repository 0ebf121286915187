"""`azfinetune status NAME`: a job's state, Studio link and (when it failed) the service's error."""

from __future__ import annotations

import click

from azfinetune.cli._app import Application
from azfinetune.cli.jobs import echo_json, job_details, workspace_options


@click.command()
@click.argument("name")
@workspace_options
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.pass_obj
def status(
    app: Application,
    name: str,
    subscription_id: str | None,
    resource_group: str | None,
    workspace_name: str | None,
    as_json: bool,
) -> None:
    """Show the status of job NAME."""
    from azfinetune.cli.jobs import make_client

    client = make_client(
        subscription_id=subscription_id, resource_group=resource_group, workspace_name=workspace_name
    )
    info = client.get(name)
    if as_json:
        echo_json(info.to_dict())
        return
    app.out.print(job_details(info))
