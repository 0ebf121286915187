"""Offline test helpers for this project's tests and users' own: HTTP-level fakes the real clients talk to.

FakeWorkspace is the Azure ML REST API (azure-ai-ml's real MLClient talks to it unchanged); FakeFoundry Azure AI
Foundry's fine-tuning API on a loopback port (the real openai / azure-ai-projects clients talk to it unchanged);
FakeKubernetes a Kubernetes API server with Kaito's Workspace CRD on a loopback port (the real `kubernetes`
client talks to it unchanged); FakeCredential a token credential that returns real (unsigned) JWTs. Production code never imports this package."""

from __future__ import annotations

from azfinetune.testing.fake_foundry import (
    BASE_MODEL_ERROR,
    DEFAULT_FOUNDRY_PROGRESSION,
    FakeFoundry,
    FakeFoundryModel,
    FoundryFault,
    FoundryRequest,
    validate_job_body,
)
from azfinetune.testing.fake_kubernetes import (
    DEFAULT_KAITO_PROGRESSION,
    FakeKubernetes,
    KubeFault,
    KubeRequest,
)
from azfinetune.testing.fake_workspace import (
    DEFAULT_PROGRESSION,
    FakeCredential,
    FakeWorkspace,
    Fault,
    RecordedRequest,
)

__all__ = [
    "BASE_MODEL_ERROR",
    "DEFAULT_FOUNDRY_PROGRESSION",
    "DEFAULT_KAITO_PROGRESSION",
    "DEFAULT_PROGRESSION",
    "FakeCredential",
    "FakeFoundry",
    "FakeFoundryModel",
    "FakeKubernetes",
    "FakeWorkspace",
    "Fault",
    "FoundryFault",
    "FoundryRequest",
    "KubeFault",
    "KubeRequest",
    "RecordedRequest",
    "validate_job_body",
]
