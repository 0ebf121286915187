"""Offline test helpers for this project's tests and users' own: HTTP-level fakes the real clients talk to.

FakeWorkspace is the Azure ML REST API (azure-ai-ml's real MLClient talks to it unchanged); FakeCredential a
token credential that returns real (unsigned) JWTs. Production code never imports this package."""

from __future__ import annotations

from azfinetune.testing.fake_workspace import (
    DEFAULT_PROGRESSION,
    FakeCredential,
    FakeWorkspace,
    Fault,
    RecordedRequest,
)

__all__ = ["DEFAULT_PROGRESSION", "FakeCredential", "FakeWorkspace", "Fault", "RecordedRequest"]
