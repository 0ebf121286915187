"""`azfinetune deploy JOB --serverless`: serve a fine-tuning job's model from a serverless endpoint."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import click
from rich.markup import escape

from azfinetune.cli._app import Application
from azfinetune.cli._foundry_flags import FoundryFlags, foundry_options, is_foundry, print_foundry_deploy
from azfinetune.cli.jobs import WorkspaceFlags, job_workspace_options


def _ml_client(workspace: WorkspaceFlags) -> Any:
    """The workspace's MLClient, from the same configuration `submit` uses (flags, AZURE_* variables, config.json)."""
    return workspace.client().ml_client


@click.command()
@click.argument("job")
@click.option("--serverless", is_flag=True, help="Deploy to a serverless (pay-per-token) endpoint.")
@click.option("--name", "endpoint", metavar="NAME", help="Endpoint name (default: from the model name).")
@click.option("--model-version", default="1", show_default=True, help="Version of the registered model.")
@click.option("--json", "as_json", is_flag=True, help="Print the endpoint as JSON.")
@job_workspace_options
@foundry_options
@click.pass_obj
def deploy(
    app: Application,
    job: str,
    serverless: bool,
    endpoint: str | None,
    model_version: str,
    as_json: bool,
    workspace: WorkspaceFlags,
    foundry: FoundryFlags,
) -> None:
    """Deploy the model that fine-tuning job JOB registered, and print how to call it."""
    if is_foundry(foundry, name=job):
        print_foundry_deploy(app, foundry.client(), job, deployment=endpoint)
        return
    from azfinetune.deploy import (
        deploy_serverless,
        endpoint_name,
        finetuned_model_id,
        registered_model_of_job,
    )

    if not serverless:
        raise click.UsageError(
            "only serverless deployments are supported: pass --serverless "
            "(for managed online endpoints use `az ml online-deployment create`)"
        )
    ml_client = _ml_client(workspace)
    with _service_errors(job):
        azure_job = ml_client.jobs.get(job)
        model_name = registered_model_of_job(azure_job)
        model_id = finetuned_model_id(ml_client, model_name, model_version)
        name = endpoint or endpoint_name(model_name)
        with app.err.status(f"creating serverless endpoint {name} for {model_name}:{model_version}..."):
            created = deploy_serverless(ml_client, model_id, name)
    scoring_uri = getattr(created, "scoring_uri", None) or "<scoring uri>"
    if as_json:
        payload = {
            "name": created.name,
            "model_id": model_id,
            "scoring_uri": getattr(created, "scoring_uri", None),
        }
        app.out.print(json.dumps(payload, indent=2), markup=False)
        return
    app.out.print(
        f"[green]✓[/green] endpoint {escape(created.name)} serves {escape(model_name)}:{model_version}"
    )
    app.out.print(f"  scoring uri: {escape(scoring_uri)}")
    # The key is never printed; the user fetches it with the CLI when needed.
    app.out.print("  call it:")
    app.out.print(
        f"    KEY=$(az ml serverless-endpoint get-credentials -n {escape(created.name)} --query primaryKey -o tsv)",
        markup=False,
    )
    app.out.print(
        f'    curl -s "{scoring_uri}/v1/chat/completions" -H "Authorization: $KEY" '
        "-H 'Content-Type: application/json' "
        '-d \'{"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 256}\'',
        markup=False,
    )


@contextlib.contextmanager
def _service_errors(job: str) -> Iterator[None]:
    """Turn azure-core errors into azfinetune's ServiceError tree (the CLI boundary prints them, exit 1)."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

    from azfinetune.errors import AuthError, NotFoundError, ServiceError

    try:
        yield
    except ResourceNotFoundError as error:
        raise NotFoundError(
            f"not found: {error.message}", hint=f"check the job name ({job}) with `azfinetune list`"
        ) from error
    except ClientAuthenticationError as error:
        raise AuthError(f"Azure refused the credentials: {error.message}", hint="run `az login`") from error
    except HttpResponseError as error:
        raise ServiceError(
            f"Azure answered {error.status_code}: {error.message}", status_code=error.status_code
        ) from error
