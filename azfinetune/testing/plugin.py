"""pytest plugin (entry point `pytest11`): the `fake_workspace` fixture, an active FakeWorkspace per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from azfinetune.testing.fake_workspace import FakeWorkspace


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fake_workspace(**kwargs): keyword arguments for the `fake_workspace` fixture's FakeWorkspace "
        "(subscription_id, resource_group, workspace, location, computes, progression, ...)",
    )


@pytest.fixture
def fake_workspace(request: pytest.FixtureRequest) -> Iterator[FakeWorkspace]:
    """An active FakeWorkspace; configure it with `@pytest.mark.fake_workspace(computes={...}, ...)`."""
    from azfinetune.testing.fake_workspace import FakeWorkspace

    kwargs: dict[str, Any] = {}
    marker = request.node.get_closest_marker("fake_workspace")
    if marker is not None:
        kwargs.update(marker.kwargs)
    with FakeWorkspace(**kwargs) as ws:
        yield ws
