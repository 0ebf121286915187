"""Deploy a serverless fine-tuning job's registered model as a serverless (pay-per-token) endpoint."""

from __future__ import annotations

import re
from typing import Any

from azfinetune.errors import BuildError

__all__ = ["deploy_serverless", "endpoint_name", "finetuned_model_id", "registered_model_of_job"]

_REGISTERED_MODEL_OUTPUT = "registered_model"
_ENDPOINT_NAME_MAX = 32


def registered_model_of_job(job: Any) -> str:
    """The model name a fine-tuning job registers (its `registered_model` output)."""
    outputs = getattr(job, "outputs", None) or {}
    output = outputs.get(_REGISTERED_MODEL_OUTPUT)
    name = output.get("name") if isinstance(output, dict) else getattr(output, "name", None)
    if not name:
        job_name = getattr(job, "name", "?")
        raise BuildError(
            f"job {job_name} has no registered_model output; only fine-tuning jobs (serverless or finetuning-job) "
            "can be deployed with --serverless",
            hint="pass the name of a job submitted from a spec with target.kind: serverless",
        )
    return str(name)


def finetuned_model_id(ml_client: Any, model_name: str, version: str | int = 1) -> str:
    """The id a ServerlessEndpoint takes for a model the workspace registered:
    ``azureml://locations/<region>/workspaces/<workspace guid>/models/<name>/versions/<v>``."""
    workspace = ml_client.workspaces.get(ml_client.workspace_name)
    workspace_id = getattr(workspace, "_workspace_id", None) or getattr(workspace, "workspace_id", None)
    if not workspace_id or not workspace.location:
        raise BuildError(
            f"workspace {ml_client.workspace_name} did not report its location and id",
            hint="check the workspace with `az ml workspace show`",
        )
    return f"azureml://locations/{workspace.location}/workspaces/{workspace_id}/models/{model_name}/versions/{version}"


def endpoint_name(model_name: str) -> str:
    """A valid endpoint name from a model name: letters, digits and '-', starting with a letter, at most 32."""
    name = re.sub(r"[^A-Za-z0-9-]+", "-", model_name).strip("-")
    if not name or not name[0].isalpha():
        name = f"ft-{name}"
    return name[:_ENDPOINT_NAME_MAX].rstrip("-")


def deploy_serverless(ml_client: Any, model_id: str, name: str) -> Any:
    """Create (or update) the serverless endpoint `name` serving `model_id`; waits and returns the endpoint."""
    from azure.ai.ml.entities import ServerlessEndpoint

    endpoint = ServerlessEndpoint(name=name, model_id=model_id)
    return ml_client.serverless_endpoints.begin_create_or_update(endpoint).result()
