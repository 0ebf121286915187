"""pytest plugin (entry point `pytest11`): the `fake_workspace`, `fake_foundry` and `fake_kubernetes` fixtures, one
active fake per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from azfinetune.testing.fake_foundry import FakeFoundry
    from azfinetune.testing.fake_kubernetes import FakeKubernetes
    from azfinetune.testing.fake_workspace import FakeWorkspace


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fake_workspace(**kwargs): keyword arguments for the `fake_workspace` fixture's FakeWorkspace "
        "(subscription_id, resource_group, workspace, location, computes, progression, ...)",
    )
    config.addinivalue_line(
        "markers",
        "fake_foundry(**kwargs): keyword arguments for the `fake_foundry` fixture's FakeFoundry "
        "(project, api_key, progression, file_polls, keep_metadata, ...)",
    )
    config.addinivalue_line(
        "markers",
        "fake_kubernetes(**kwargs): keyword arguments for the `fake_kubernetes` fixture's FakeKubernetes "
        "(namespaces, token, progression, node_auto_provisioning, ...)",
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


@pytest.fixture
def fake_foundry(request: pytest.FixtureRequest) -> Iterator[FakeFoundry]:
    """A running FakeFoundry (configure it with `@pytest.mark.fake_foundry(...)`); it serves on 127.0.0.1, so
    under pytest-socket mark the test `@pytest.mark.allow_hosts(["127.0.0.1"])`."""
    from azfinetune.testing.fake_foundry import FakeFoundry

    kwargs: dict[str, Any] = {}
    marker = request.node.get_closest_marker("fake_foundry")
    if marker is not None:
        kwargs.update(marker.kwargs)
    with FakeFoundry(**kwargs) as fake:
        yield fake


@pytest.fixture
def fake_kubernetes(request: pytest.FixtureRequest) -> Iterator[FakeKubernetes]:
    """A running FakeKubernetes with Kaito (configure it with `@pytest.mark.fake_kubernetes(...)`); it serves on
    127.0.0.1, so under pytest-socket mark the test `@pytest.mark.allow_hosts(["127.0.0.1"])`."""
    from azfinetune.testing.fake_kubernetes import FakeKubernetes

    kwargs: dict[str, Any] = {}
    marker = request.node.get_closest_marker("fake_kubernetes")
    if marker is not None:
        kwargs.update(marker.kwargs)
    with FakeKubernetes(**kwargs) as fake:
        yield fake
