"""Every FakeWorkspace fault through `azfinetune submit` (and the job commands): success after retry, or a clear
error and exit 1 — never a traceback, never a second job, never an endless retry."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from azfinetune.client import RETRY_SETTINGS, SUBMIT_ATTEMPTS
from azfinetune.testing import FakeWorkspace
from tests.cli.conftest import CliResult
from tests.client.conftest import Project, job_puts

Run = Callable[..., CliResult]


@pytest.fixture
def spec(project: Project) -> str:
    return str(project.spec("command"))


def ok(result: CliResult, ws: FakeWorkspace) -> str:
    assert result.code == 0, result.err
    assert "Traceback" not in result.text
    (name,) = ws.jobs  # exactly one job
    return name


def failed(result: CliResult, *needles: str) -> str:
    assert result.code == 1, result.text
    assert "Traceback" not in result.text and "internal error" not in result.err
    for needle in needles:
        assert needle in result.err, result.err
    return result.err


# -- transient faults: success after retry ------------------------------------------------------------------


def test_429_with_retry_after_is_waited_out(spec: str, ws: FakeWorkspace, run_cli: Run) -> None:
    ws.throttle("PUT", r"/jobs/[^/]+$", times=2, retry_after=7)
    ok(run_cli("submit", spec), ws)
    assert [r.status for r in job_puts(ws)] == [429, 429, 201]
    assert ws.sleeps.count(7.0) == 2  # honoured (the fake does not really sleep)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_bursts_are_retried(status: int, spec: str, ws: FakeWorkspace, run_cli: Run) -> None:
    ws.server_errors(status, "GET", r"/jobs/", times=2)
    ws.server_errors(status, "PUT", r"/jobs/[^/]+$", times=2)
    ws.server_errors(status, "PUT", r"\.blob\.|/azfinetune/data/", times=1)
    ok(run_cli("submit", spec), ws)


def test_502_on_a_post_is_tried_again_as_a_whole_submit(spec: str, ws: FakeWorkspace, run_cli: Run) -> None:
    # azure-core retries POST only on 500/503/504; the submit is idempotent, so it is tried again whole.
    ws.server_errors(502, "POST", "startPendingUpload", times=1)
    ok(run_cli("submit", spec), ws)
    assert ws.count("POST", "startPendingUpload") == 2 and len(job_puts(ws)) == 1


def test_connection_errors_are_retried(spec: str, ws: FakeWorkspace, run_cli: Run) -> None:
    ws.drop_connections("GET", r"/jobs/", times=2)
    ws.drop_connections("POST", "listSecrets", times=1)  # POST: not retried by azure-core, the submit is
    ok(run_cli("submit", spec), ws)


def test_lost_answer_after_the_job_was_created(spec: str, ws: FakeWorkspace, run_cli: Run) -> None:
    ws.lose_response("PUT", r"/jobs/[^/]+$", times=1)
    name = ok(run_cli("submit", spec), ws)
    assert [r.fault for r in job_puts(ws)] == ["lost", None]  # the retried PUT is the same body: an update
    assert run_cli("submit", spec).code == 0 and list(ws.jobs) == [name]


def test_lost_answers_until_retries_run_out_are_settled_by_reading_the_job(
    spec: str, ws: FakeWorkspace, run_cli: Run
) -> None:
    ws.lose_response("PUT", r"/jobs/[^/]+$", times=None)
    ok(run_cli("submit", spec), ws)


# -- errors: a clear message and exit 1 -----------------------------------------------------------------------


def test_401_says_sign_in_again(spec: str, ws: FakeWorkspace, run_cli: Run) -> None:
    ws.deny(401)
    failed(run_cli("submit", spec), "401", "az login")
    assert ws.jobs == {}


def test_403_names_the_identity_the_action_and_the_role(spec: str, ws: FakeWorkspace, run_cli: Run) -> None:
    ws.deny(403, "PUT", r"/jobs/[^/]+$")
    err = failed(
        run_cli("submit", spec),
        "fake.user@contoso.com",
        "00000000-0000-0000-0000-0000000000bb",
        "Microsoft.MachineLearningServices/workspaces/jobs/write",
        "AzureML Data Scientist",
    )
    assert "(403)" in err
    assert ws.jobs == {}


def test_403_on_status(ws: FakeWorkspace, run_cli: Run) -> None:
    ws.deny(403, "GET")
    failed(run_cli("status", "some-job"), "not allowed", "workspaces/jobs/read", "role")


def test_missing_workspace(spec: str, ws: FakeWorkspace, run_cli: Run) -> None:
    ws.workspace_exists = False
    failed(run_cli("submit", spec), "workspace ws-fake not found", "--workspace")
    assert ws.uploads == []


def test_missing_compute(project: Project, ws: FakeWorkspace, run_cli: Run) -> None:
    spec = project.spec("command")
    spec.write_text(spec.read_text().replace("compute: gpu-cluster", "compute: no-such-cluster"))
    failed(run_cli("submit", str(spec)), "compute no-such-cluster not found", "az ml compute list")


def test_missing_compute_for_a_pipeline(project: Project, ws: FakeWorkspace, run_cli: Run) -> None:
    spec = project.spec("pipeline")
    spec.write_text(spec.read_text().replace("compute: gpu-cluster", "compute: no-such-cluster"))
    failed(run_cli("submit", str(spec)), "compute", "not found")
    assert job_puts(ws) == []


def test_missing_model(spec: str, ws: FakeWorkspace, run_cli: Run) -> None:
    ws.mark_model_missing("azureml://registries/azureml/models/Phi-3-mini-4k-instruct")
    failed(run_cli("submit", spec), "model", "not found", "Phi-3-mini-4k-instruct")
    assert ws.jobs == {}


def test_name_taken_by_another_job_is_an_immutable_conflict(
    spec: str, ws: FakeWorkspace, run_cli: Run
) -> None:
    name = json.loads(run_cli("submit", spec, "--dry-run", "--json").out)["name"]
    from azure.ai.ml import command

    other = {"azfinetune.spec_hash": "f" * 64, "azfinetune.spec_name": "t-command"}
    ws.ml_client().jobs.create_or_update(
        command(name=name, command="echo", environment="azureml:my-env:3", compute="gpu-cluster", tags=other)
    )
    failed(run_cli("submit", spec), f"a job named {name} already exists", "another spec", "--new-run")


def test_service_says_already_exists_and_the_job_differs(spec: str, ws: FakeWorkspace, run_cli: Run) -> None:
    name = json.loads(run_cli("submit", spec, "--dry-run", "--json").out)["name"]
    from azure.ai.ml import command

    ws.ml_client().jobs.create_or_update(
        command(name=name, command="echo other", environment="azureml:my-env:3", compute="gpu-cluster")
    )
    ws.inject("GET", f"/jobs/{name}$", status=404, code="UserError", message=f"Job '{name}' was not found")
    # The job PUT meets the service's real "already exists ... cannot be changed" answer; the job is read back.
    failed(run_cli("submit", spec), "already exists", "--new-run")
    assert any(r.status == 400 for r in job_puts(ws))


def test_quota_failure_of_a_running_job(spec: str, ws: FakeWorkspace, run_cli: Run) -> None:
    name = ok(run_cli("submit", spec), ws)
    ws.fail_job(name)  # JobNodeCountExceedsCoreQuota
    err = failed(
        run_cli("logs", name, "--follow", "--timeout", "600"),
        "quota",
        "JobNodeCountExceedsCoreQuota",
        "instance_type",
    )
    assert "Standard NCADSA100v4 Family vCPU quota of 0" in err
    failed(run_cli("submit", spec, "--wait", "--timeout", "600"), "quota")


def test_throttling_that_outlasts_the_retries(spec: str, ws: FakeWorkspace, run_cli: Run) -> None:
    ws.throttle("GET", r"/jobs/", times=1000, retry_after=1)
    failed(run_cli("submit", spec), "throttling", "429", "a repeated submit does not make a second job")
    assert len(ws.requests) == RETRY_SETTINGS["retry_status"] + 1  # bounded, and 429 is not tried again whole


def test_5xx_that_outlasts_the_retries(spec: str, ws: FakeWorkspace, run_cli: Run) -> None:
    ws.server_errors(503, "GET", r"/jobs/", times=1000)
    failed(run_cli("submit", spec), "503", "wait and run the command again")
    assert len(ws.requests) == (RETRY_SETTINGS["retry_status"] + 1) * SUBMIT_ATTEMPTS  # bounded


def test_unreachable_service(spec: str, ws: FakeWorkspace, run_cli: Run) -> None:
    ws.drop_connections(times=None)
    failed(run_cli("submit", spec), "could not reach Azure", "proxy")
    assert len(ws.requests) == (RETRY_SETTINGS["retry_connect"] + 1) * SUBMIT_ATTEMPTS


def test_a_code_file_that_cannot_be_uploaded_fails_cleanly(
    spec: str, ws: FakeWorkspace, run_cli: Run
) -> None:
    # Regression: with show_progress=False azure-ai-ml 1.35 swallows a folder upload's worker errors and then
    # waits forever for the missing file; azfinetune keeps progress on (captured) so the error surfaces.
    ws.server_errors(500, "PUT", r"/src/finetune/train\.py$", times=None)
    failed(run_cli("submit", spec), "500")
    assert ws.jobs == {}
