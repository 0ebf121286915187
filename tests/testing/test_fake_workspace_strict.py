"""FakeWorkspace is as strict as the service: job bodies are checked against the REST API's own schema for the
api-version they carry, computes must exist whatever form names them, registry components take only their inputs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import requests

from azfinetune.testing import FakeWorkspace
from azfinetune.testing._rest_schema import JOB_API_VERSIONS, job_body_violations, job_types

PHI4 = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/3"
FINETUNING = "2024-10-01-preview"
COMMAND = "2025-01-01-preview"
PIPELINE = "2024-01-01-preview"


@pytest.fixture
def ws() -> Any:
    with FakeWorkspace(computes={"gpu-cluster": "Standard_NC24ads_A100_v4"}) as fake:
        yield fake


def put(ws: FakeWorkspace, name: str, body: dict[str, Any], api: str) -> requests.Response:
    url = f"https://management.azure.com{ws.workspace_id}/jobs/{name}"
    return requests.put(
        url, params={"api-version": api}, json=body, headers={"Authorization": "Bearer x"}, timeout=5
    )


def finetuning_body() -> dict[str, Any]:
    """A FineTuning PUT body exactly as azure-ai-ml 1.35 sends it (research: rest-schema.md §6)."""
    return {
        "properties": {
            "jobType": "FineTuning",
            "displayName": "d",
            "experimentName": "e",
            "isArchived": False,
            "fineTuningDetails": {
                "taskType": "chatCompletion",
                "model": {"uri": PHI4, "jobInputType": "mlflow_model"},
                "modelProvider": "Custom",
                "trainingData": {"uri": "azureml:train:1", "jobInputType": "uri_file"},
                "hyperParameters": {"num_train_epochs": "1"},
            },
            "outputs": {"registered_model": {"assetName": "m", "jobOutputType": "mlflow_model"}},
        }
    }


def command_body(compute: str = "gpu-cluster") -> dict[str, Any]:
    return {
        "properties": {
            "jobType": "Command",
            "command": "echo hi",
            "environmentId": "azureml:my-env:3",
            "computeId": compute,
        }
    }


def refusal(response: requests.Response) -> dict[str, Any]:
    """The 400 body, checked to be the ARM error shape the Jobs operations declare."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    assert isinstance(error["details"], list) and isinstance(error["additionalInfo"], list)
    for detail in error["details"]:
        assert set(detail) == {"code", "message", "target"}
    return error  # type: ignore[no-any-return]


# -- the malformed bodies of issue 16, one test each -------------------------------------------------------


def test_an_unknown_job_type_is_refused(ws: FakeWorkspace) -> None:
    body = command_body()
    body["properties"]["jobType"] = "Bogus"
    error = refusal(put(ws, "bogus", body, COMMAND))
    assert error["code"] == "UserError" and error["target"] == "properties.jobType"
    assert "'Bogus' is not one of" in error["message"] and "Command" in error["message"]
    assert ws.jobs == {}


def test_a_finetuning_job_without_its_details_is_refused(ws: FakeWorkspace) -> None:
    body = finetuning_body()
    del body["properties"]["fineTuningDetails"]
    error = refusal(put(ws, "ft-nodetails", body, FINETUNING))
    assert "'fineTuningDetails' is a required property" in error["message"]
    assert put(ws, "ft-ok", finetuning_body(), FINETUNING).status_code == 201


def test_a_command_job_without_a_command_is_refused(ws: FakeWorkspace) -> None:
    body = command_body()
    del body["properties"]["command"]
    error = refusal(put(ws, "nocommand", body, COMMAND))
    assert "'command' is a required property" in error["message"]
    body["properties"]["command"] = ""  # minLength 1 and a pattern, as the spec says
    refusal(put(ws, "emptycommand", body, COMMAND))


def test_a_compute_named_bare_that_does_not_exist_is_refused(ws: FakeWorkspace) -> None:
    response = put(ws, "nocompute", command_body("gpu-missing"), COMMAND)
    assert response.status_code == 404 and "gpu-missing" in response.json()["error"]["message"]
    for form in ("azureml:gpu-missing", f"{ws.workspace_id}/computes/gpu-missing"):
        assert put(ws, "nocompute", command_body(form), COMMAND).status_code == 404, form
    forms = ("gpu-cluster", "GPU-Cluster", "azureml:gpu-cluster", f"{ws.workspace_id}/computes/gpu-cluster")
    for index, form in enumerate(forms):
        assert put(ws, f"ok-{index}", command_body(form), COMMAND).status_code == 201, form
    pipeline = {
        "properties": {
            "jobType": "Pipeline",
            "jobs": {
                "step": {"type": "command", "computeId": "azureml:gpu-gone", "componentId": "azureml:c:1"}
            },
            "settings": {"default_compute": "gpu-cluster"},
        }
    }
    assert put(ws, "pipe", pipeline, PIPELINE).status_code == 404
    pipeline["properties"]["jobs"]["step"]["computeId"] = "gpu-cluster"
    pipeline["properties"]["settings"]["default_compute"] = "gpu-gone"
    assert put(ws, "pipe", pipeline, PIPELINE).status_code == 404
    assert sorted(ws.jobs) == [f"ok-{index}" for index in range(len(forms))]


def test_an_input_the_registry_component_does_not_declare_is_refused(
    ws: FakeWorkspace, tmp_path: Path
) -> None:
    from azfinetune.spec import spec_from_dict
    from azfinetune.targets import build_job, rest_body

    (tmp_path / "train.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n' * 12
    )
    spec = spec_from_dict(
        {
            "name": "strict-registry",
            "model": "phi-3-mini-4k-instruct",
            "data": {"train": "azureml:chat-train:1"},
            "target": {"kind": "registry-pipeline", "compute": "gpu-cluster"},
        },
        base_dir=tmp_path,
    )
    body = rest_body(build_job(spec), base_dir=tmp_path)
    assert put(ws, "registry-ok", body, PIPELINE).status_code == 201
    bad = copy.deepcopy(body)
    node = next(iter(bad["properties"]["jobs"].values()))
    # Phi-3-mini's asset carries learning_rate_min; chat_completion_pipeline has no such input.
    node["inputs"]["learning_rate_min"] = {"job_input_type": "literal", "value": "5e-7"}
    error = refusal(put(ws, "registry-bad", bad, PIPELINE))
    assert error["target"].endswith(".inputs.learning_rate_min")
    assert "learning_rate_min" in error["message"] and "chat_completion_pipeline" in error["message"]
    # Any case of a declared name is the same input.
    node["inputs"].pop("learning_rate_min")
    node["inputs"]["Learning_Rate"] = {"job_input_type": "literal", "value": "1e-5"}
    assert put(ws, "registry-case", bad, PIPELINE).status_code == 201


# -- api-versions per job type ---------------------------------------------------------------------------------


def test_finetuning_exists_only_in_the_previews_that_have_it(ws: FakeWorkspace) -> None:
    assert "FineTuning" in job_types("2024-10-01-preview") and "FineTuning" in job_types("2024-01-01-preview")
    assert "FineTuning" not in job_types("2025-12-01") and "FineTuning" not in job_types("2023-04-01-preview")
    error = refusal(put(ws, "ft-stable", finetuning_body(), "2025-12-01"))
    assert "'FineTuning' is not one of" in error["message"]
    assert put(ws, "ft-preview", finetuning_body(), "2025-01-01-preview").status_code == 201


def test_an_api_version_without_a_jobs_schema_is_refused(ws: FakeWorkspace) -> None:
    response = put(ws, "old", command_body(), "2020-01-01")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "InvalidApiVersionParameter"
    for version in JOB_API_VERSIONS:
        assert version in error["message"]


def test_what_azure_ai_ml_sends_passes(ws: FakeWorkspace) -> None:
    """The schema's non-obvious rules: enums in any case (taskType chatCompletion), optional fields null."""
    body = finetuning_body()
    body["properties"]["description"] = None
    assert job_body_violations(FINETUNING, body) == []
    body["properties"]["fineTuningDetails"]["taskType"] = "ChatCompletions"
    assert [v.path for v in job_body_violations(FINETUNING, body)] == [
        "properties.fineTuningDetails.taskType"
    ]


# -- the error shape, as azure-core reads it --------------------------------------------------------------------


def test_a_refusal_reads_as_the_service_error_in_azure_core(ws: FakeWorkspace) -> None:
    from azure.core.exceptions import HttpResponseError
    from azure.core.pipeline.transport import RequestsTransportResponse
    from azure.core.rest import HttpRequest
    from azure.mgmt.core.exceptions import ARMErrorFormat

    body = command_body()
    del body["properties"]["command"]
    raw = put(ws, "nocommand", body, COMMAND)
    response = RequestsTransportResponse(HttpRequest("PUT", raw.url), raw)
    error = HttpResponseError(response=response, error_format=ARMErrorFormat)
    assert error.error is not None and error.error.code == "UserError"
    assert "'command' is a required property" in str(error)
    assert error.error.details and error.error.details[0].code == "InvalidRequestContent"


def test_a_schema_refusal_through_the_real_client(ws: FakeWorkspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """azure-ai-ml's own create_or_update gets the 400 and raises it with the service's code and message."""
    from azure.ai.ml import command
    from azure.ai.ml.entities import CommandJob
    from azure.core.exceptions import HttpResponseError

    job = command(command="echo hi", environment="azureml:my-env:3", compute="gpu-cluster", name="cmd-x")
    original = CommandJob._to_rest_object

    def without_command(self: Any) -> Any:
        rest = original(self)
        rest.properties.command = None  # what a broken builder would send
        return rest

    monkeypatch.setattr(CommandJob, "_to_rest_object", without_command)
    with pytest.raises(HttpResponseError) as caught:
        ws.ml_client().jobs.create_or_update(job)
    assert "'command' is a required property" in str(caught.value)
    assert ws.jobs == {}


# -- Paused ------------------------------------------------------------------------------------------------------


def test_paused_is_terminal(ws: FakeWorkspace) -> None:
    from azfinetune.client import TERMINAL_STATUSES
    from azfinetune.testing.fake_workspace import TERMINAL_STATUSES as FAKE_TERMINAL

    assert "Paused" in FAKE_TERMINAL and FAKE_TERMINAL == TERMINAL_STATUSES
    assert put(ws, "p1", command_body(), COMMAND).status_code == 201
    ws.set_progression(["Running", "Paused"], job="p1")
    ml = ws.ml_client()
    assert [ml.jobs.get("p1").status for _ in range(3)] == ["Paused", "Paused", "Paused"]
    ml.jobs.begin_cancel("p1").result()
    assert ml.jobs.get("p1").status == "Paused"  # a terminal job is not cancelled
    ws.fail_job("p1")
    assert ws.job_status("p1") == "Failed"
