"""`azfinetune report JOB` for an Azure ML job: MLflow metrics recorded on the FakeWorkspace, table and plot."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from azfinetune.testing import FakeWorkspace
from tests.cli.conftest import CliResult


def _job(name: str) -> object:
    from azure.ai.ml import command

    return command(
        name=name,
        command="echo hi",
        environment="azureml:env:1",
        compute="gpu-cluster",
    )


@pytest.fixture
def recorded(ws: FakeWorkspace) -> str:
    ws.ml_client().jobs.create_or_update(_job("reported"))
    ws.set_metrics(
        "reported",
        {"loss": [(1, 2.0), (10, 1.0)], "eval_loss": [(10, 1.2)], "train_loss": [(10, 1.4)]},
    )
    return "reported"


def test_report_of_an_azure_job_reads_its_mlflow_metrics(
    run_cli: Callable[..., CliResult], recorded: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("report", recorded)
    assert result.code == 0, result.text
    assert "train loss" in result.out and "1.4000" in result.out and "1.2000" in result.out
    plot = tmp_path / "outputs" / recorded / "loss.png"
    assert plot.stat().st_size > 1000 and "loss.png" in result.out
    as_json = run_cli("report", recorded, "--json")
    history = json.loads(as_json.out)["metrics"]["loss_history"]
    assert history == [{"step": 1, "loss": 2.0}, {"step": 10, "loss": 1.0, "eval_loss": 1.2}]


def test_report_of_an_unknown_job_is_a_clear_error(
    run_cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("report", "no-such-job")
    assert result.code == 1
    assert "no-such-job" in result.err and "Traceback" not in result.err
