"""`azfinetune status / logs / cancel / list` against FakeWorkspace: tables, --json, exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from azfinetune.testing import FakeWorkspace
from tests.cli.conftest import CliResult
from tests.client.conftest import Project

Run = Callable[..., CliResult]


@pytest.fixture
def job(project: Project, ws: FakeWorkspace, run_cli: Run) -> str:
    assert run_cli("submit", str(project.spec("command"))).code == 0
    (name,) = ws.jobs
    return name


def test_status(job: str, ws: FakeWorkspace, run_cli: Run) -> None:
    result = run_cli("status", job)
    assert result.code == 0, result.err
    assert job in result.out and "Queued" in result.out and "t-command" in result.out
    data = json.loads(run_cli("status", job, "--json").out)
    assert data["name"] == job and data["spec_name"] == "t-command" and data["status"] == "Running"


def test_status_of_a_failed_job_shows_the_service_error(job: str, ws: FakeWorkspace, run_cli: Run) -> None:
    ws.fail_job(job, code="UserError", message="ValueError: bad column 'text'")
    data = json.loads(run_cli("status", job, "--json").out)
    assert data["status"] == "Failed" and data["error"] == "UserError: ValueError: bad column 'text'"


def test_status_of_a_missing_job_exits_1(ws: FakeWorkspace, run_cli: Run) -> None:
    result = run_cli("status", "no-such-job")
    assert result.code == 1
    assert "job no-such-job not found" in result.err and "azfinetune list" in result.err


def test_logs_snapshot_and_follow(job: str, ws: FakeWorkspace, run_cli: Run) -> None:
    ws.set_logs(job, {"user_logs/std_log.txt": "step 1 loss=2.0\nstep 2 loss=1.5\n"})
    snapshot = run_cli("logs", job)
    assert snapshot.code == 0, snapshot.err
    assert snapshot.out == "step 1 loss=2.0\nstep 2 loss=1.5\n"  # stdout is the log itself
    followed = run_cli("logs", job, "--follow", "--timeout", "600")
    assert followed.code == 0 and "Completed" in followed.err
    assert "sig=" not in followed.text  # the log's SAS link never reaches the output
    events = [json.loads(line) for line in run_cli("logs", job, "--json").out.splitlines()]
    assert events[0]["kind"] == "status" and events[1] == {
        "kind": "log",
        "job_name": job,
        "status": "Completed",
        "text": "step 1 loss=2.0",
        "log_file": "user_logs/std_log.txt",
    }


def test_logs_follow_of_a_failed_job_exits_1(job: str, ws: FakeWorkspace, run_cli: Run) -> None:
    ws.set_progression(
        ["Running", "Failed"], job=job, error={"code": "ScriptExecution", "message": "exit code 3"}
    )
    result = run_cli("logs", job, "--follow", "--timeout", "600")
    assert result.code == 1
    assert f"job {job} failed: ScriptExecution: exit code 3" in result.err


def test_cancel(job: str, ws: FakeWorkspace, run_cli: Run) -> None:
    result = run_cli("cancel", job)
    assert result.code == 0, result.err
    assert f"cancel requested: {job}" in result.out
    assert ws.job_status(job) in ("CancelRequested", "Canceled")
    assert ws.count("POST", f"/jobs/{job}/cancel") == 1


def test_cancel_missing_job_exits_1(ws: FakeWorkspace, run_cli: Run) -> None:
    result = run_cli("cancel", "nope")
    assert result.code == 1 and "job nope not found" in result.err


def test_list_filters(project: Project, ws: FakeWorkspace, run_cli: Run) -> None:
    assert run_cli("submit", str(project.spec("command", name="alpha"))).code == 0
    assert run_cli("submit", str(project.spec("command", name="beta"))).code == 0
    from azure.ai.ml import command

    ws.ml_client().jobs.create_or_update(
        command(name="foreign", command="echo", environment="azureml:my-env:3", compute="gpu-cluster")
    )
    table = run_cli("list")
    assert table.code == 0, table.err
    assert "alpha-" in table.out and "beta-" in table.out and "foreign" not in table.out
    assert "NAME" in table.out and "STATUS" in table.out
    assert len(json.loads(run_cli("list", "--all", "--json").out)) == 3
    only = json.loads(run_cli("list", "--spec", "beta", "--json").out)
    assert [j["spec_name"] for j in only] == ["beta"]
    beta = only[0]["name"]
    ws.set_status(beta, "Failed")
    failed = json.loads(run_cli("list", "--status", "failed", "--json").out)
    assert [j["name"] for j in failed] == [beta]
    assert json.loads(run_cli("list", "--since", "1h", "--json").out) != []
    assert json.loads(run_cli("list", "--since", "2999-01-01", "--json").out) == []
    assert run_cli("list", "--since", "yesterday").code == 2


def test_list_empty(ws: FakeWorkspace, run_cli: Run) -> None:
    result = run_cli("list")
    assert result.code == 0 and "no jobs found" in result.err
