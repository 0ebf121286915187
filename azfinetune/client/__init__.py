"""Talking to Azure ML: which workspace, Azure's errors as ours, uploads, results, and FineTuneClient.

FineTuneClient submits a spec exactly once (its name comes from the spec and its data), then follows, lists and
cancels its jobs; FoundryClient and KaitoClient do the same for Azure AI Foundry and Kaito on Kubernetes. Nothing here prints; nothing below this package touches the network."""

from azfinetune.client._client import FineTuneClient, use_ml_client
from azfinetune.client._errors import is_name_conflict, is_transient, map_azure_error, redact
from azfinetune.client._foundry import (
    ENDPOINT_VARIABLE,
    FoundryClient,
    FoundryReport,
    foundry_status,
    is_foundry_job_id,
    use_foundry_credential,
)
from azfinetune.client._kaito import KaitoClient, kaito_status
from azfinetune.client._results import TERMINAL_STATUSES, JobEvent, JobInfo, SubmittedJob, UploadedFile
from azfinetune.client._service import JobService
from azfinetune.client._settings import DATASTORE, RETRY_SETTINGS, SUBMIT_ATTEMPTS
from azfinetune.client._workspace import WorkspaceConfig, resolve_workspace

__all__ = [
    "DATASTORE",
    "ENDPOINT_VARIABLE",
    "RETRY_SETTINGS",
    "SUBMIT_ATTEMPTS",
    "TERMINAL_STATUSES",
    "FineTuneClient",
    "FoundryClient",
    "FoundryReport",
    "JobEvent",
    "JobInfo",
    "JobService",
    "KaitoClient",
    "SubmittedJob",
    "UploadedFile",
    "WorkspaceConfig",
    "foundry_status",
    "is_foundry_job_id",
    "is_name_conflict",
    "is_transient",
    "kaito_status",
    "map_azure_error",
    "redact",
    "resolve_workspace",
    "use_foundry_credential",
    "use_ml_client",
]
