"""Fixtures for the workspace commands: run the CLI in-process against a FakeWorkspace (no subprocess, no network).

The CLI reaches the fake through `azfinetune.client.use_ml_client`: inside it, FineTuneClient.from_config() returns
a client on the given MLClient, whatever the flags, environment or config.json say."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from azfinetune.testing import FakeWorkspace
from tests.client.conftest import client, project, workspace_client, ws

__all__ = ["CliResult", "client", "project", "run_cli", "ws"]


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture
def run_cli(
    ws: FakeWorkspace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., CliResult]:
    """run_cli("submit", "spec.yaml", ...) -> CliResult, with the CLI pointed at the `ws` fake."""
    import azfinetune.cli as cli_package
    from azfinetune.cli._app import run_with_boundary
    from azfinetune.client import use_ml_client

    monkeypatch.setenv("COLUMNS", "250")  # rich tables: no truncation in captured output
    monkeypatch.delenv("AZFINETUNE_DEBUG", raising=False)
    ml_client = workspace_client(ws).ml_client  # the MLClient azfinetune makes (its retry settings)

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        with use_ml_client(ml_client):
            code = run_with_boundary(cli_package.cli, list(args))
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run
