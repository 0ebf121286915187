"""`azfinetune logs NAME [--follow]`: the job's output so far, or streamed with its status until it finishes."""

from __future__ import annotations

import json

import click
from rich.markup import escape

from azfinetune.cli._app import Application
from azfinetune.cli._foundry_flags import FoundryFlags, foundry_options, job_client
from azfinetune.cli._kaito_flags import KaitoFlags, kaito_options
from azfinetune.cli.jobs import WorkspaceFlags, job_workspace_options, styled_status


@click.command()
@click.argument("name")
@click.option(
    "-f", "--follow", is_flag=True, help="Keep streaming until the job finishes (exit 1 if it fails)."
)
@click.option(
    "--timeout", type=float, default=None, help="With --follow: stop streaming after this many seconds."
)
@job_workspace_options
@foundry_options
@kaito_options
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per event (status change or log line)."
)
@click.pass_obj
def logs(
    app: Application,
    name: str,
    follow: bool,
    timeout: float | None,
    workspace: WorkspaceFlags,
    foundry: FoundryFlags,
    kaito: KaitoFlags,
    as_json: bool,
) -> None:
    """Print the logs of job NAME (the training process's output)."""
    client = job_client(workspace, foundry, name=name, kaito=kaito)
    current_file: str | None = None
    for event in client.stream(name, follow=follow, timeout=timeout):
        if as_json:
            click.echo(json.dumps(event.to_dict()))
        elif event.kind == "status":
            # Status goes to stderr so that stdout is the log itself, ready to pipe.
            app.err.print(f"{escape(name)}: {styled_status(event.status)}")
        else:
            if event.log_file != current_file:
                current_file = event.log_file
                app.err.print(f"[dim]── {escape(current_file or '')} ──[/dim]")
            click.echo(event.text)
