"""Offline test helpers: FakeWorkspace (a fake Azure ML REST API for the real MLClient) and FakeCredential."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azfinetune.testing.fake_workspace import (
        DEFAULT_PROGRESSION,
        FakeCredential,
        FakeWorkspace,
        Fault,
        RecordedRequest,
    )

__all__ = ["DEFAULT_PROGRESSION", "FakeCredential", "FakeWorkspace", "Fault", "RecordedRequest"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import azfinetune.testing` (done by the pytest plugin in every test session) stays cheap.
    if name in __all__:
        from azfinetune.testing import fake_workspace

        return getattr(fake_workspace, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
