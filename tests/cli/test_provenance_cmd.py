"""`azfinetune plan` shows where each value comes from; `submit --new-run` makes a pipeline run every step again."""

from __future__ import annotations

import json
from collections.abc import Callable

from azfinetune.testing import FakeWorkspace
from tests.cli.conftest import CliResult
from tests.client.conftest import Project, job_puts

Run = Callable[..., CliResult]


def test_plan_shows_each_value_and_its_source(project: Project, run_cli: Run) -> None:
    result = run_cli("plan", str(project.spec("registry-pipeline")), "--no-data")
    assert result.code == 0, result.err
    assert "Values and where they come from" in result.out
    lines = {line.split()[0]: line for line in result.out.splitlines() if line.strip()}
    assert "model asset" in lines["learning_rate"] and "5e-06" in lines["learning_rate"]
    assert "spec" in lines["lora_r"] and "training.epochs" in lines["num_train_epochs"]
    assert "component default (not sent)" in lines["seed"]
    data = json.loads(run_cli("plan", str(project.spec("registry-pipeline")), "--no-data", "--json").out)
    sources = {item["name"]: item for item in data["value_sources"]}
    assert sources["learning_rate"]["source"] == "model asset" and sources["seed"]["sent"] is False
    assert sources["mlflow_model_path"]["value"].startswith("mlflow_model:azureml://registries/azureml/")


def test_plan_shows_azfinetune_defaults_for_our_own_jobs(project: Project, run_cli: Run) -> None:
    result = run_cli("plan", str(project.spec("command")), "--no-data")
    assert result.code == 0, result.err
    line = next(line for line in result.out.splitlines() if line.strip().startswith("--learning-rate"))
    assert "azfinetune default" in line


def test_new_run_forces_every_step_to_run_again(project: Project, ws: FakeWorkspace, run_cli: Run) -> None:
    spec = str(project.spec("registry-pipeline"))
    assert run_cli("submit", spec).code == 0
    assert run_cli("submit", spec, "--new-run").code == 0
    first, again = (put.json["properties"]["settings"] for put in job_puts(ws))
    assert first["force_rerun"] is False and again["force_rerun"] is True
