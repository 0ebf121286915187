"""target.kind serverless: serverless fine-tuning (MaaS) of the models whose registry asset offers it.

Its offline rules (the offer, its tasks and the service's ranges) and its pre-submit checks, which need the
workspace (region) and today's date (retired offers), then a marketplace subscription for non-Microsoft models."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from azfinetune.catalog import ModelInfo, ServerlessStatus, find_model
from azfinetune.errors import Issue, ServerlessRegionError, ServerlessRetiredError
from azfinetune.spec import FineTuneSpec, ServerlessTarget, Task
from azfinetune.targets._finetuning import (
    SERVERLESS_HYPERPARAMETERS,
    FineTuningTargetBase,
    finetuning_model_uri,
)
from azfinetune.targets._protocol import WorkspaceSession
from azfinetune.targets._rules import catalog_model, serverless_models

__all__ = [
    "SERVERLESS_HYPERPARAMETERS",
    "TARGET",
    "check_not_retired",
    "check_serverless_region",
    "marketplace_model_id",
    "marketplace_subscription_name",
    "needs_marketplace_subscription",
    "normalize_region",
]


def normalize_region(location: str) -> str:
    """'East US 2' / 'eastus2' / ' EastUS2 ' -> 'eastus2', the form Azure's workspace `location` uses."""
    return "".join(location.split()).lower()


def _serverless_model(spec: FineTuneSpec) -> ModelInfo | None:
    """The catalog model of a serverless spec whose model offers serverless fine-tuning, else None."""
    if spec.target.kind != "serverless":
        return None
    info = find_model(spec.model)
    return info if info is not None and info.serverless is not None else None


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
    if spec.target.kind != "serverless":
        return False
    info = find_model(spec.model)
    return info is not None and not info.microsoft


def marketplace_model_id(spec: FineTuneSpec) -> str:
    """The model id a MarketplaceSubscription takes: the registry asset without its version,
    ``azureml://registries/<registry>/models/<asset>``."""
    uri = finetuning_model_uri(spec)
    head, _, _ = uri.rpartition("/models/")
    asset = uri[len(head) + len("/models/") :].split("/", 1)[0]
    return f"{head}/models/{asset}"


def marketplace_subscription_name(spec: FineTuneSpec) -> str:
    """'<asset>-sub' with dots made dashes, the name Azure's samples give a model's subscription in a workspace
    (one per model and workspace, so creating it again is harmless)."""
    asset = marketplace_model_id(spec).rsplit("/", 1)[-1]
    return f"{asset.replace('.', '-')}-sub"


def _ensure_marketplace_subscription(session: WorkspaceSession, name: str, model_id: str) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    operations = session.ml_client.marketplace_subscriptions
    try:
        operations.get(name)
        return
    except ResourceNotFoundError:
        pass
    from azure.ai.ml.entities import MarketplaceSubscription

    poller = operations.begin_create_or_update(MarketplaceSubscription(name=name, model_id=model_id))
    poller.result(timeout=600)


class _Serverless(FineTuningTargetBase):
    kind = "serverless"
    fields = ServerlessTarget
    summary = "FineTuningJob (MaaS): Azure's serverless GPUs and training code, billed per trained token"
    what = "serverless fine-tuning"
    # The service's task types for MaaS models; each model's catalog entry narrows them (own_rules).
    tasks = frozenset({Task.CHAT_COMPLETION, Task.TEXT_COMPLETION})

    def own_rules(self, spec: FineTuneSpec) -> Iterator[Issue]:
        info = catalog_model(spec)
        if info is None or info.serverless is None:
            name = info.display_name if info else spec.model
            offered = serverless_models()
            yield Issue(
                "model",
                f"{name} is not offered for serverless fine-tuning",
                hint=f"models with serverless fine-tuning: {', '.join(offered) or 'none in the catalog'}; "
                "or fine-tune this model on your own compute with target.kind: finetuning-job or command",
            )
        else:
            if spec.task.value not in info.serverless.tasks:
                yield Issue(
                    "task",
                    f"serverless fine-tuning of {info.display_name} supports {', '.join(info.serverless.tasks)}, "
                    f"not {spec.task.value}",
                    hint="use target.kind: command to fine-tune this model for other tasks on your own compute",
                )
            if not info.serverless.verified:
                yield Issue(
                    "model",
                    f"serverless fine-tuning of {info.display_name} is on record but not confirmed by the current "
                    f"docs ({info.serverless.note or info.serverless.source}); the service may refuse it",
                    hint="check the model's page in Azure AI Foundry, or fine-tune it with target.kind: "
                    "finetuning-job or command",
                    severity="warning",
                )
            status = info.serverless_status(self.today())
            if status in ("retired", "deprecated"):
                when = info.serverless.retired if status == "retired" else info.serverless.deprecated
                alternative = info.serverless.alternative or "phi-4-mini-instruct"
                yield Issue(
                    "model",
                    f"serverless fine-tuning of {info.display_name} was {status} on {when}",
                    hint=f"use model: {alternative} (serverless), or the same model on your own compute with "
                    "target.kind: command; submit refuses it unless --allow-retired",
                    severity="warning",
                )
        yield from super().own_rules(spec)
        # The service's documented ranges (Azure AI Foundry serverless fine-tuning wizard): epochs 1-10 whole,
        # batch size 1-32. The learning rate has no documented absolute range (the wizard shows a multiplier
        # 0-10 of the model's default); the spec's own bound (0, 0.1] applies.
        training = spec.training
        if not 1 <= training.epochs <= 10 or training.epochs != int(training.epochs):
            yield Issue(
                "training.epochs",
                f"serverless fine-tuning takes 1-10 whole epochs, got {training.epochs:g}",
                hint="set training.epochs to a whole number from 1 to 10",
            )
        if not 1 <= training.per_device_batch_size <= 32:
            yield Issue(
                "training.per_device_batch_size",
                f"serverless fine-tuning takes a batch size of 1-32, got {training.per_device_batch_size}",
                hint="set training.per_device_batch_size from 1 to 32",
            )

    def presubmit(self, session: WorkspaceSession, spec: FineTuneSpec, job: Any) -> None:
        """The workspace's region must offer the model; non-Microsoft models need a marketplace subscription
        (created if missing); a `labels/latest` model is pinned to its version."""
        workspace = session.ml_client.workspaces.get(session.ml_client.workspace_name)
        check_serverless_region(spec, str(getattr(workspace, "location", "") or ""))
        if needs_marketplace_subscription(spec):
            _ensure_marketplace_subscription(
                session, marketplace_subscription_name(spec), marketplace_model_id(spec)
            )
        super().presubmit(session, spec, job)


TARGET = _Serverless()
