"""`azfinetune submit` end to end against FakeWorkspace: every job kind, repeat, --dry-run, --wait, --json."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from azfinetune.testing import FakeWorkspace
from tests.cli.conftest import CliResult
from tests.client.conftest import Project, job_puts, kind_params

Run = Callable[..., CliResult]


@pytest.mark.parametrize("kind", kind_params())
def test_submit_each_kind_then_repeat(kind: str, project: Project, ws: FakeWorkspace, run_cli: Run) -> None:
    spec = str(project.spec(kind))
    first = run_cli("submit", spec)
    assert first.code == 0, first.err
    (name,) = ws.jobs
    assert f"submitted {name} ({kind} job" in first.out
    assert f"Studio:           {ws.jobs[name]['properties']['services']['Studio']['endpoint']}" in first.out
    assert f"To stream logs:   azfinetune logs {name} --follow" in first.out
    assert f"azfinetune status {name}" in first.out and f"azfinetune cancel {name}" in first.out
    assert "Traceback" not in first.text

    ws.clear_requests()
    again = run_cli("submit", spec)
    assert again.code == 0, again.err
    assert f"already submitted: {name}" in again.out
    assert list(ws.jobs) == [name] and ws.uploads == [] and len(ws.requests) <= 2


def test_submit_json(project: Project, ws: FakeWorkspace, run_cli: Run) -> None:
    result = run_cli("submit", str(project.spec("command")), "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["name"] in ws.jobs and data["created"] is True and data["kind"] == "command"
    assert {u["role"] for u in data["uploads"]} == {"train", "validation"}


def test_dry_run_prints_the_job_and_sends_nothing(project: Project, ws: FakeWorkspace, run_cli: Run) -> None:
    result = run_cli("submit", str(project.spec("command")), "--dry-run")
    assert result.code == 0, result.err
    assert "dry run:" in result.out and "nothing sent" in result.out
    assert '"jobType": "Command"' in result.out
    assert "keyvault://kv-test/hf-token" in result.out  # a reference, not a secret
    assert ws.requests == []
    data = json.loads(run_cli("submit", str(project.spec("command")), "--dry-run", "--json").out)
    assert data["dry_run"] is True and data["job"]["properties"]["jobType"] == "Command"


def test_set_and_new_run(project: Project, ws: FakeWorkspace, run_cli: Run) -> None:
    spec = str(project.spec("command"))
    assert run_cli("submit", spec).code == 0
    assert run_cli("submit", spec, "--set", "training.epochs=2").code == 0
    assert run_cli("submit", spec, "--new-run").code == 0
    assert len(ws.jobs) == 3
    assert sum(1 for name in ws.jobs if name.rsplit("-", 1)[-1].startswith("r")) == 1


def test_wait_until_completed(project: Project, ws: FakeWorkspace, run_cli: Run) -> None:
    result = run_cli("submit", str(project.spec("command")), "--wait", "--timeout", "600")
    assert result.code == 0, result.err
    (name,) = ws.jobs
    assert ws.job_status(name) == "Completed"


def test_wait_on_a_failed_job_exits_1_with_the_service_message(
    project: Project, ws: FakeWorkspace, run_cli: Run
) -> None:
    ws.set_progression(
        ["NotStarted", "Running", "Failed"], error={"code": "UserError", "message": "CUDA out of memory"}
    )
    result = run_cli("submit", str(project.spec("command")), "--wait", "--timeout", "600")
    assert result.code == 1
    assert "failed: UserError: CUDA out of memory" in result.err
    assert "azfinetune logs" in result.err and "Traceback" not in result.err


def test_bad_spec_exits_2_and_sends_nothing(project: Project, ws: FakeWorkspace, run_cli: Run) -> None:
    result = run_cli("submit", str(project.spec("command")), "--set", "method.lora.r=0")
    assert result.code == 2 and "method.lora.r" in result.err
    assert ws.requests == []


def test_retired_model_needs_allow_retired(project: Project, ws: FakeWorkspace, run_cli: Run) -> None:
    spec = project.spec("serverless", name="t-retired")
    spec.write_text(spec.read_text().replace("phi-4-mini-instruct", "phi-3-mini-4k-instruct"))
    refused = run_cli("submit", str(spec))
    assert refused.code == 2 and "--allow-retired" in refused.err and ws.requests == []
    assert run_cli("submit", str(spec), "--allow-retired").code == 0
    assert len(job_puts(ws)) == 1


def test_workspace_flags_are_accepted(project: Project, ws: FakeWorkspace, run_cli: Run) -> None:
    result = run_cli(
        "submit",
        str(project.spec("command")),
        "--subscription",
        "s",
        "--resource-group",
        "g",
        "--workspace",
        "w",
    )
    assert result.code == 0, result.err
