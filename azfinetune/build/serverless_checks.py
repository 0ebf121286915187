"""Pre-submit checks of serverless fine-tuning that need submit-time facts (workspace region, today's date)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from azfinetune.errors import BuildError

if TYPE_CHECKING:
    from azfinetune.catalog import ModelInfo, ServerlessStatus
    from azfinetune.spec import FineTuneSpec

__all__ = [
    "ServerlessRegionError",
    "ServerlessRetiredError",
    "ServerlessUnavailableError",
    "check_not_retired",
    "check_serverless_region",
    "marketplace_model_id",
    "marketplace_subscription_name",
    "needs_marketplace_subscription",
    "normalize_region",
]


class ServerlessUnavailableError(BuildError):
    """The model has no serverless fine-tuning (for this task)."""


class ServerlessRegionError(ServerlessUnavailableError):
    """The workspace is in a region where the model's serverless fine-tuning is not offered."""


class ServerlessRetiredError(ServerlessUnavailableError):
    """Azure retired the model's serverless fine-tuning; the user did not pass --allow-retired."""


def normalize_region(location: str) -> str:
    """'East US 2' / 'eastus2' / ' EastUS2 ' -> 'eastus2', the form Azure's workspace `location` uses."""
    return "".join(location.split()).lower()


def _serverless_model(spec: FineTuneSpec) -> ModelInfo | None:
    """The catalog model of a serverless spec, or None for any other target kind."""
    from azfinetune.catalog import find_model

    if spec.target.kind.value != "serverless":
        return None
    info = find_model(spec.model)
    if info is None or info.serverless is None:
        # The spec rules refuse this already; kept for specs built around them (model_construct and the like).
        raise ServerlessUnavailableError(
            f"{spec.model} is not offered for serverless fine-tuning",
            path="model",
            hint="use target.kind: finetuning-job or command to fine-tune it on your own compute",
        )
    return info


def check_serverless_region(spec: FineTuneSpec, workspace_location: str) -> None:
    """Raise ServerlessRegionError unless the workspace's region offers the model's serverless fine-tuning.

    A no-op for every target kind but serverless (a finetuning-job runs on the user's compute)."""
    info = _serverless_model(spec)
    if info is None or info.serverless is None:
        return
    region = normalize_region(workspace_location)
    regions = info.serverless.regions
    if region in regions:
        return
    raise ServerlessRegionError(
        f"serverless fine-tuning of {info.display_name} is offered in {', '.join(regions)}; "
        f"this workspace is in {region or 'an unknown region'}",
        path="target.kind",
        hint=f"submit to a workspace (Azure AI Foundry hub or project) in {' or '.join(regions)}, or fine-tune "
        "on your own compute with target.kind: finetuning-job (or command) in this workspace",
    )


def check_not_retired(
    spec: FineTuneSpec, *, allow_retired: bool = False, today: dt.date | None = None
) -> ServerlessStatus | None:
    """Raise ServerlessRetiredError for a model whose serverless fine-tuning Azure has retired, unless
    `allow_retired`. Returns the offer's status on `today` ("available", "deprecated", ...), None for other kinds.

    A date before the catalog's `available_from` is not refused: that date is the earliest one verified, and the
    offer may be older."""
    info = _serverless_model(spec)
    if info is None or info.serverless is None:
        return None
    status = info.serverless_status(today or dt.date.today())
    if status == "retired" and not allow_retired:
        alternative = info.serverless.alternative
        instead = f"model: {alternative} (serverless), or " if alternative else ""
        raise ServerlessRetiredError(
            f"serverless fine-tuning of {info.display_name} was retired on {info.serverless.retired}; "
            "Azure no longer runs these jobs",
            path="model",
            hint=f"use {instead}the same model on your own compute with target.kind: finetuning-job or command; "
            "pass --allow-retired to submit anyway",
        )
    return status


def needs_marketplace_subscription(spec: FineTuneSpec) -> bool:
    """True when serverless fine-tuning of this model goes through an Azure Marketplace offer (non-Microsoft
    models); Microsoft's own models (Phi) need none, and creating one for them fails."""
    if spec.target.kind.value != "serverless":
        return False
    from azfinetune.catalog import find_model

    info = find_model(spec.model)
    return info is not None and not info.microsoft


def marketplace_model_id(spec: FineTuneSpec) -> str:
    """The model id a MarketplaceSubscription takes: the registry asset without its version,
    ``azureml://registries/<registry>/models/<asset>``."""
    from azfinetune.build.finetuning import finetuning_model_uri

    uri = finetuning_model_uri(spec)
    head, _, _ = uri.rpartition("/models/")
    asset = uri[len(head) + len("/models/") :].split("/", 1)[0]
    return f"{head}/models/{asset}"


def marketplace_subscription_name(spec: FineTuneSpec) -> str:
    """'<asset>-sub' with dots made dashes, the name Azure's samples give a model's subscription in a workspace
    (one per model and workspace, so creating it again is harmless)."""
    asset = marketplace_model_id(spec).rsplit("/", 1)[-1]
    return f"{asset.replace('.', '-')}-sub"
