"""Injected faults on FakeWorkspace as the real MLClient sees them: retries, auth, not-found, lost answers, chaos."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from azfinetune.testing import FakeWorkspace

PHI3 = "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/14"


@pytest.fixture
def ws() -> Any:
    with FakeWorkspace(computes={"gpu-cluster": "Standard_NC24ads_A100_v4"}) as fake:
        yield fake


def _job(name: str, **overrides: Any) -> Any:
    from azure.ai.ml import command

    options: dict[str, Any] = {
        "command": "echo hi",
        "environment": "azureml:my-env:3",
        "compute": "gpu-cluster",
        "name": name,
    }
    options.update(overrides)
    return command(**options)


def _put_statuses(ws: FakeWorkspace, name: str) -> list[int | None]:
    return [r.status for r in ws.requests_to("PUT", f"/jobs/{name}")]


def test_429_waits_for_retry_after_then_succeeds(ws: FakeWorkspace) -> None:
    fault = ws.throttle("PUT", "/jobs/", retry_after=7)
    ws.ml_client().jobs.create_or_update(_job("throttled"))
    assert _put_statuses(ws, "throttled") == [429, 201]
    assert ws.requests[0].fault == "status:429"
    assert ws.sleeps == [7.0]  # honoured, but not slept
    assert fault.fired == 1 and fault.exhausted


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_burst_is_retried(ws: FakeWorkspace, status: int) -> None:
    ws.server_errors(status, "PUT", "/jobs/", times=2)
    ws.ml_client().jobs.create_or_update(_job("bursty"))
    assert _put_statuses(ws, "bursty") == [status, status, 201]


def test_5xx_that_outlasts_the_retries_surfaces(ws: FakeWorkspace) -> None:
    from azure.core.exceptions import HttpResponseError

    ws.server_errors(503, "PUT", "/jobs/", times=5)
    with pytest.raises(HttpResponseError) as info:
        ws.ml_client().jobs.create_or_update(_job("down"))
    assert info.value.status_code == 503
    assert info.value.error.code == "ServiceUnavailable"
    assert _put_statuses(ws, "down") == [503] * 4  # retry_status=3
    assert ws.jobs == {}


def test_connection_errors_are_retried_or_surface(ws: FakeWorkspace) -> None:
    from azure.core.exceptions import ServiceRequestError

    ml = ws.ml_client()
    ml.jobs.create_or_update(_job("conn"))
    ws.clear_requests()
    ws.drop_connections("GET", "/jobs/conn", times=2)
    assert ml.jobs.get("conn").name == "conn"
    assert [(r.status, r.fault) for r in ws.requests] == [
        (None, "connection"),
        (None, "connection"),
        (200, None),
    ]

    ws.drop_connections("GET", "/jobs/conn", times=None)
    with pytest.raises(ServiceRequestError):
        ml.jobs.get("conn")


def test_response_lost_after_the_job_was_created(ws: FakeWorkspace) -> None:
    from azure.core.exceptions import ServiceResponseError

    ws.lose_response("PUT", "/jobs/lost")
    job = ws.ml_client().jobs.create_or_update(_job("lost"))
    assert job.name == "lost"
    # The first PUT created the job; azure-core re-sent the identical body, which the service accepts as an update.
    assert _put_statuses(ws, "lost") == [None, 200]
    assert list(ws.jobs) == ["lost"]

    ws.lose_response("PUT", "/jobs/lost-no-retry")
    with pytest.raises(ServiceResponseError):
        ws.ml_client(retry_total=0).jobs.create_or_update(_job("lost-no-retry"))
    assert "lost-no-retry" in ws.jobs  # created although the client saw an error


def test_401_and_403(ws: FakeWorkspace) -> None:
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    ml = ws.ml_client()
    ws.deny(401, "GET", "/jobs/", times=1)
    with pytest.raises(ClientAuthenticationError) as auth:
        ml.jobs.get("x")
    assert auth.value.error.code == "InvalidAuthenticationToken"

    ws.deny(403, "PUT", "/jobs/")
    with pytest.raises(HttpResponseError) as denied:
        ml.jobs.create_or_update(_job("forbidden"))
    assert denied.value.status_code == 403
    assert denied.value.error.code == "AuthorizationFailed"
    assert "Microsoft.MachineLearningServices/workspaces/jobs/write" in denied.value.message
    assert ws.credential.object_id in denied.value.message


def test_404_for_workspace_compute_and_model(ws: FakeWorkspace, project: Path) -> None:
    from azure.ai.ml.finetuning import FineTuningTaskType, create_finetuning_job
    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError, match="workspaces/elsewhere"):
        ws.ml_client(workspace_name="elsewhere").jobs.get("x")
    ws.workspace_exists = False
    with pytest.raises(ResourceNotFoundError, match="ResourceNotFound"):
        ws.ml_client().workspaces.get(ws.workspace)
    ws.workspace_exists = True

    ml = ws.ml_client()
    with pytest.raises(ResourceNotFoundError, match="computes/cpu-cluster"):
        ml.compute.get("cpu-cluster")
    with pytest.raises(ResourceNotFoundError, match="Compute 'cpu-cluster'"):
        ml.jobs.create_or_update(_job("no-compute", compute="cpu-cluster"))

    ws.add_registry_model("Phi-3-mini-4k-instruct", 14)
    registry = ws.registry_client()
    assert registry.models.get("Phi-3-mini-4k-instruct", version="14").version == "14"
    ws.mark_model_missing(PHI3)
    with pytest.raises(ResourceNotFoundError):
        registry.models.get("Phi-3-mini-4k-instruct", version="14")
    job = create_finetuning_job(
        model=PHI3,
        task=FineTuningTaskType.CHAT_COMPLETION,
        training_data="azureml:train:1",
        validation_data="azureml:valid:1",
        output_model_name_prefix="ft",
        name="ft-missing-model",
    )
    with pytest.raises(ResourceNotFoundError, match="Phi-3-mini-4k-instruct"):
        ml.jobs.create_or_update(job)
    assert ws.count("PUT", "/jobs/") == 2 and ws.jobs == {}


def test_quota_failure_of_a_running_job(ws: FakeWorkspace) -> None:
    ml = ws.ml_client()
    ml.jobs.create_or_update(_job("quota"))
    assert [ml.jobs.get("quota").status for _ in range(2)] == ["Queued", "Running"]
    ws.fail_job("quota")
    assert ml.jobs.get("quota").status == "Failed"
    error = ml.jobs._runs_operations.get_run_details("quota").error.error
    assert error.code == "JobNodeCountExceedsCoreQuota"
    assert "quota" in error.message


def test_storage_faults_during_upload_are_retried(ws: FakeWorkspace, project: Path) -> None:
    from azure.ai.ml import Input

    ws.server_errors(503, "PUT", r"/LocalUpload/", times=2)
    ws.inject("HEAD", r"/LocalUpload/", error="connection")
    job = _job("upload", inputs={"train": Input(type="uri_file", path="./data/train.jsonl")})
    ws.ml_client().jobs.create_or_update(job)
    blob_puts = [r.status for r in ws.requests_to("PUT", "/LocalUpload/") if "comp" not in r.query]
    assert blob_puts == [503, 503, 201]
    assert ws.requests_to("PUT", "/LocalUpload/")[0].headers.get("x-ms-blob-type") == "BlockBlob"
    assert any(s >= 10 for s in ws.sleeps)  # storage's ExponentialRetry backoff, recorded not slept


def test_inject_needs_exactly_one_outcome(ws: FakeWorkspace) -> None:
    with pytest.raises(ValueError):
        ws.inject("GET", "/jobs/")
    with pytest.raises(ValueError):
        ws.inject("GET", "/jobs/", status=500, error="connection")


def test_chaos_soak_never_duplicates_or_loses_jobs(ws: FakeWorkspace) -> None:
    """Seeded 30% transient failures, job PUTs sometimes applied-then-lost: 10 specs x 3 submits -> 10 jobs."""
    from azure.core.exceptions import AzureError

    ml = ws.ml_client()
    ws.chaos(rate=0.3, seed=1)
    start = time.monotonic()
    names = [f"soak-{i}" for i in range(10)]
    for _round in range(3):
        for name in names:
            for _attempt in range(10):  # the client's own bounded retry on top of azure-core's
                try:
                    ml.jobs.create_or_update(_job(name))
                    break
                except AzureError:
                    continue
            else:
                pytest.fail(f"{name} was never submitted")
    ws.clear_faults()
    assert sorted(ws.jobs) == sorted(names)
    faults = [r.fault for r in ws.requests if r.fault]
    assert "chaos:lost" in faults and "chaos:connection" in faults and "chaos:503" in faults
    assert all(r.status in (200, 201, None, 500, 503) for r in ws.requests_to("PUT", "/jobs/"))
    assert time.monotonic() - start < 10
