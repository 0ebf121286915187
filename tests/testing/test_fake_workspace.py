"""The real azure.ai.ml MLClient against FakeWorkspace: uploads, jobs, streaming, pipelines, fine-tuning."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from azfinetune.testing import FakeCredential, FakeWorkspace

SUB = "00000000-0000-0000-0000-000000000001"
WS_PATH = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
REGISTRY_ENV = "azureml://registries/azureml/environments/acpt-pytorch-2.2-cuda12.1/versions/1"
PHI3 = "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/14"
# A registry pipeline component in the shape of azureml's chat_completion_pipeline (sub-steps by reference).
REGISTRY_PIPELINE: dict[str, Any] = {
    "$schema": "https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json",
    "name": "chat_completion_pipeline",
    "version": "0.0.82",
    "type": "pipeline",
    "inputs": {
        "huggingface_id": {"type": "string", "optional": True},
        "train_file_path": {"type": "uri_file", "optional": True},
    },
    "outputs": {"mlflow_model_folder": {"type": "mlflow_model"}},
    "jobs": {
        "finetune": {
            "type": "command",
            "component": "azureml:chat_completion_finetune:0.0.81",
            "inputs": {"train_file_path": "${{parent.inputs.train_file_path}}"},
            "outputs": {"mlflow_model_folder": "${{parent.outputs.mlflow_model_folder}}"},
        }
    },
}


@pytest.fixture
def ws() -> Any:
    with FakeWorkspace(
        subscription_id=SUB,
        resource_group="rg",
        workspace="ws",
        location="eastus2",
        computes={"gpu-cluster": "Standard_NC24ads_A100_v4"},
    ) as fake:
        yield fake


def _command_job(name: str, **overrides: Any) -> Any:
    from azure.ai.ml import Input, command

    options: dict[str, Any] = {
        "code": "./src",
        "command": "python train.py --train ${{inputs.train}}",
        "environment": REGISTRY_ENV,
        "compute": "gpu-cluster",
        "inputs": {"train": Input(type="uri_file", path="./data/train.jsonl")},
        "name": name,
    }
    options.update(overrides)
    return command(**options)


def _remote_job(name: str, **overrides: Any) -> Any:
    from azure.ai.ml import command

    options: dict[str, Any] = {
        "command": "echo hi",
        "environment": "azureml:my-env:3",
        "compute": "gpu-cluster",
        "name": name,
    }
    options.update(overrides)
    return command(**options)


def _shape(ws: FakeWorkspace) -> list[tuple[str, str, str, str | None]]:
    """(method, host kind, path with ids masked, api-version) of every request, for sequence assertions."""
    out = []
    for r in ws.requests:
        kind = "arm" if r.host == "management.azure.com" else "blob" if ".blob." in r.host else r.host
        path = r.path.replace(WS_PATH, "{ws}").replace(ws.datastore_container, "{ds}")
        path = "/".join("{id}" if len(seg) >= 32 and "." not in seg else seg for seg in path.split("/"))
        if r.query.get("comp"):
            path += "?comp=" + r.query["comp"]
        out.append((r.method, kind, path, r.api_version))
    return out


def test_command_job_with_local_code_and_data_uploads_once(ws: FakeWorkspace, project: Path) -> None:
    ml = ws.ml_client()
    created = ml.jobs.create_or_update(_command_job("job-a1"))

    assert created.status == "NotStarted"
    assert created.studio_url.startswith("https://ml.azure.com/runs/job-a1?wsid=" + WS_PATH)
    assert _shape(ws) == [
        ("GET", "arm", "{ws}/codes/{id}/versions", "2023-04-01"),
        ("POST", "arm", "{ws}/codes/{id}/versions/1/startPendingUpload", "2023-04-01"),
        ("HEAD", "blob", "/{id}/src/train.py", None),
        ("PUT", "blob", "/{id}/src/train.py", None),
        ("PUT", "blob", "/{id}/src/train.py?comp=metadata", None),
        ("PUT", "arm", "{ws}/codes/{id}/versions/1", "2023-04-01"),
        ("GET", "arm", "{ws}/datastores/workspaceblobstore", "2024-10-01-preview"),
        ("POST", "arm", "{ws}/datastores/workspaceblobstore/listSecrets", "2024-10-01-preview"),
        ("HEAD", "blob", "/{ds}/LocalUpload/{id}/train.jsonl", None),
        ("PUT", "blob", "/{ds}/LocalUpload/{id}/train.jsonl", None),
        ("PUT", "blob", "/{ds}/LocalUpload/{id}/train.jsonl?comp=metadata", None),
        ("PUT", "arm", "{ws}/jobs/job-a1", "2025-01-01-preview"),
    ]
    head_404 = ws.requests[2]
    assert head_404.status == 404
    assert ws.requests[0].query["hashVersion"] == "202208"
    assert len(ws.uploads) == 2
    assert b"training" in ws.blobs[next(k for k in ws.blobs if k.endswith("src/train.py"))]

    body = ws.requests_to("PUT", "/jobs/job-a1")[0].json["properties"]
    assert body["jobType"] == "Command"
    assert body["codeId"].startswith(WS_PATH + "/codes/")
    assert body["inputs"]["train"]["uri"].startswith(
        "azureml://datastores/workspaceblobstore/paths/LocalUpload/"
    )
    assert body["experimentName"] == "proj"
    assert not any(k.startswith("mlflow.source.git") for k in body["properties"])  # git props neutralised
    assert all("Authorization" not in r.headers for r in ws.requests)

    # The same submit again: the code asset is found by hash, the data blob by its metadata; nothing uploaded.
    ws.clear_requests()
    again = ml.jobs.create_or_update(_command_job("job-a1"))
    assert again.name == "job-a1"
    assert ws.uploads == []
    assert ws.count("GET", "/codes/") == 2
    assert ws.count("HEAD", host=".blob.") == 2  # LocalUpload hit + legacy az-ml-artifacts miss
    assert ws.requests[-1].status == 200  # an identical job PUT is an update, not a conflict
    assert list(ws.jobs) == ["job-a1"]


def test_job_put_with_a_changed_body_is_the_immutable_error(ws: FakeWorkspace, project: Path) -> None:
    from azure.core.exceptions import HttpResponseError

    ml = ws.ml_client()
    ml.jobs.create_or_update(_remote_job("fixed-name"))
    with pytest.raises(HttpResponseError) as info:
        ml.jobs.create_or_update(_remote_job("fixed-name", command="echo changed"))
    assert info.value.status_code == 400
    assert info.value.error.code == "UserError"
    assert "A job with this name already exists" in str(info.value)
    assert ws.jobs["fixed-name"]["properties"]["command"] == "echo hi"

    # Tags may change on an existing job.
    ml.jobs.create_or_update(_remote_job("fixed-name", tags={"team": "nlp"}))
    assert ws.jobs["fixed-name"]["properties"]["tags"] == {"team": "nlp"}


def test_get_list_cancel_are_fast_and_follow_the_progression(ws: FakeWorkspace, project: Path) -> None:
    from azure.ai.ml.entities import Job

    ml = ws.ml_client()
    start = time.monotonic()
    ws.page_size = 2
    for i in range(3):
        ml.jobs.create_or_update(_remote_job(f"job-{i}", tags={"i": str(i)}))
    ws.clear_requests()

    listed = list(ml.jobs.list())
    assert [j.name for j in listed] == ["job-2", "job-1", "job-0"]
    assert all(isinstance(j, Job) for j in listed)
    pages = ws.requests_to("GET", WS_PATH + "/jobs")
    assert len(pages) == 2 and pages[1].query["$skipToken"] == "2"
    assert pages[0].query["listViewType"] == "ActiveOnly"

    assert [ml.jobs.get("job-0").status for _ in range(4)] == ["Queued", "Running", "Completed", "Completed"]

    ws.lro_polls = 2  # the operation answers 202 twice before 200
    ml.jobs.begin_cancel("job-1").result()
    assert ws.requests_to("POST", "/jobs/job-1/cancel")[0].status == 202
    assert [r.status for r in ws.requests_to("GET", "/mfeOperationResults/")] == [202, 202, 200]
    assert ml.jobs.get("job-1").status == "CancelRequested"
    assert ml.jobs.get("job-1").status == "Canceled"
    assert time.monotonic() - start < 5
    assert ws.sleeps == [30.0, 30.0]  # the poller's 30 s default, asked for and not slept

    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError):
        ml.jobs.get("no-such-job")


def test_stream_to_completed_then_failed(
    ws: FakeWorkspace, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from azure.ai.ml.exceptions import JobException

    ml = ws.ml_client()
    ml.jobs.create_or_update(_remote_job("ok"))
    ws.set_metrics("ok", {"train_loss": [(1, 2.5), (2, 1.25)]})
    start = time.monotonic()
    ml.jobs.stream("ok")
    out = capsys.readouterr().out
    assert "RunId: ok" in out and "train_loss=1.25" in out
    assert ws.job_status("ok") == "Completed"
    assert ws.count("GET", "/discovery", host="eastus2.api.azureml.ms") == 1
    details = ws.requests_to("GET", "/runs/ok/details")
    assert details and details[0].host == "eastus2.api.azureml.ms"

    ws.fail_job("bad", "JobNodeCountExceedsCoreQuota", "quota of 0 vCPUs")
    ml.jobs.create_or_update(_remote_job("bad"))
    with pytest.raises(JobException) as info:
        ml.jobs.stream("bad")
    assert "JobNodeCountExceedsCoreQuota" in str(info.value)
    assert ml.jobs.get("bad").status == "Failed"
    assert time.monotonic() - start < 5


def test_progression_controls(ws: FakeWorkspace, project: Path) -> None:
    ml = ws.ml_client()
    ws.set_progression(["NotStarted", "Queued"])  # stays queued forever
    ml.jobs.create_or_update(_remote_job("stuck"))
    assert {ml.jobs.get("stuck").status for _ in range(3)} == {"Queued"}
    ws.set_status("stuck", "Running")
    assert ml.jobs.get("stuck").status == "Running"
    ws.fail_job("stuck", "UserError", "boom")
    assert ml.jobs.get("stuck").status == "Failed"
    details = ml.jobs._runs_operations.get_run_details("stuck")
    assert details.error.error.message == "boom"

    ws.set_progression(["NotStarted", "Running", "Completed"], job="later")
    ml.jobs.create_or_update(_remote_job("later"))
    assert ws.advance("later", 5) == "Completed"


def test_pipeline_job_with_a_command_node_sends_a_user_token(ws: FakeWorkspace, project: Path) -> None:
    from azure.ai.ml import Input, command, dsl

    ml = ws.ml_client()
    step = command(
        code="./src",
        command="python train.py --train ${{inputs.train}}",
        environment="azureml:my-env:3",
        inputs={"train": Input(type="uri_file")},
    )

    @dsl.pipeline(compute="gpu-cluster")
    def pipe(train):  # type: ignore[no-untyped-def]
        step(train=train)

    job = ml.jobs.create_or_update(
        pipe(train=Input(type="uri_file", path="./data/train.jsonl")), experiment_name="e"
    )
    assert job.status == "NotStarted"
    put = ws.requests_to("PUT", "/jobs/")[0]
    assert put.api_version == "2024-01-01-preview"
    assert put.json["properties"]["jobType"] == "Pipeline"
    claims = jwt.decode(put.headers["x-azureml-token"], options={"verify_signature": False})
    assert claims["aud"] == "https://ml.azure.com"
    assert ws.count("GET", "/computes/gpu-cluster") == 1
    anonymous = ws.requests_to("PUT", "/components/azureml_anonymous/versions/")
    assert anonymous and anonymous[0].api_version == "2024-01-01-preview"
    assert ws.assets("components")["azureml_anonymous"]


def test_pipeline_on_a_missing_compute_fails_before_submitting(ws: FakeWorkspace, project: Path) -> None:
    from azure.ai.ml import command, dsl
    from azure.ai.ml.exceptions import MlException

    ml = ws.ml_client()
    step = command(command="echo hi", environment="azureml:my-env:3")

    @dsl.pipeline(compute="no-such-cluster")
    def pipe():  # type: ignore[no-untyped-def]
        step()

    with pytest.raises(MlException, match="compute"):
        ml.jobs.create_or_update(pipe())
    assert ws.requests_to("GET", "/computes/no-such-cluster")[0].status == 404
    assert ws.count("PUT") == 0


def test_pipeline_with_a_registry_component(ws: FakeWorkspace, project: Path) -> None:
    from azure.ai.ml import Input, dsl

    spec = REGISTRY_PIPELINE
    ws.add_registry_component("chat_completion_pipeline", spec["version"], spec)
    ml = ws.ml_client()
    component = ws.registry_client("azureml").components.get("chat_completion_pipeline", label="latest")
    assert component.version == spec["version"]
    discovery = ws.requests[0]
    assert discovery.host == "eastus.api.azureml.ms"
    assert discovery.path == "/registrymanagement/v1.0/registries/azureml/discovery"
    assert ws.requests[1].host == "cert-eastus.experiments.azureml.net"
    assert ws.requests[1].api_version == "2021-10-01-dataplanepreview"

    @dsl.pipeline(compute="gpu-cluster")
    def pipe(train):  # type: ignore[no-untyped-def]
        component(huggingface_id="microsoft/Phi-3-mini-4k-instruct", train_file_path=train)

    ml.jobs.create_or_update(pipe(train=Input(type="uri_file", path="azureml:train-data:1")))
    node = next(iter(ws.requests_to("PUT", "/jobs/")[0].json["properties"]["jobs"].values()))
    assert (
        node["componentId"]
        == f"azureml://registries/azureml/components/chat_completion_pipeline/versions/{spec['version']}"
    )


def test_serverless_finetuning_job(ws: FakeWorkspace, project: Path) -> None:
    from azure.ai.ml.entities._job.finetuning.custom_model_finetuning_job import CustomModelFineTuningJob
    from azure.ai.ml.finetuning import FineTuningTaskType, create_finetuning_job

    ml = ws.ml_client()
    job = create_finetuning_job(
        model=PHI3,
        task=FineTuningTaskType.CHAT_COMPLETION,
        training_data="./data/train.jsonl",
        validation_data="./data/valid.jsonl",
        hyperparameters={"num_train_epochs": "1"},
        output_model_name_prefix="phi3-ft",
        name="ft-1",
    )
    ml.jobs.create_or_update(job)
    put = ws.requests_to("PUT", "/jobs/ft-1")[0]
    assert put.api_version == "2024-10-01-preview"
    props = put.json["properties"]
    assert props["jobType"] == "FineTuning"
    assert "computeId" not in props
    details = props["fineTuningDetails"]
    assert details["model"] == {"uri": PHI3, "jobInputType": "mlflow_model"}
    assert details["validationData"]["uri"].endswith("/valid.jsonl")
    assert len(ws.uploads) == 2

    got = ml.jobs.get("ft-1")
    assert isinstance(got, CustomModelFineTuningJob)
    assert got.status == "Queued"  # one step per jobs.get, although it reads the job twice
    assert [r.api_version for r in ws.requests_to("GET", "/jobs/ft-1")] == [
        "2024-01-01-preview",
        "2024-10-01-preview",
    ]


def test_marketplace_subscription_and_serverless_endpoint(ws: FakeWorkspace) -> None:
    from azure.ai.ml.entities import MarketplaceSubscription, ServerlessEndpoint
    from azure.core.exceptions import HttpResponseError

    ml = ws.ml_client()
    llama = "azureml://registries/azureml-meta/models/Llama-2-7b"
    with pytest.raises(HttpResponseError, match="marketplace subscription"):
        ml.serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="ep", model_id=llama)).result()

    sub = ml.marketplace_subscriptions.begin_create_or_update(
        MarketplaceSubscription(model_id=llama, name="llama2")
    ).result()
    assert sub.status == "subscribed"
    assert ml.marketplace_subscriptions.get("llama2").model_id == llama
    assert ws.requests_to("PUT", "/marketplaceSubscriptions/llama2")[0].json == {
        "properties": {"modelId": llama}
    }

    endpoint = ml.serverless_endpoints.begin_create_or_update(
        ServerlessEndpoint(name="ep", model_id=llama)
    ).result()
    assert endpoint.scoring_uri == "https://ep.eastus2.models.ai.azure.com"
    assert ml.serverless_endpoints.get("ep").provisioning_state.lower() == "succeeded"
    assert ml.serverless_endpoints.get_keys("ep").primary_key.startswith("fake-primary-")


def test_assets_data_environment_and_latest(ws: FakeWorkspace, project: Path) -> None:
    from azure.ai.ml.entities import Data, Environment

    ml = ws.ml_client()
    data = ml.data.create_or_update(Data(name="train-data", path="./data/train.jsonl", type="uri_file"))
    assert data.version == "1"
    assert (
        ml.data.create_or_update(Data(name="train-data", path="./data/valid.jsonl", type="uri_file")).version
        == "2"
    )
    assert ml.data.get("train-data", label="latest").version == "2"
    ml.environments.create_or_update(Environment(name="my-env", version="5", image="mcr.microsoft.com/x:1"))
    ws.clear_requests()
    ml.jobs.create_or_update(_remote_job("latest-refs", environment="my-env@latest"))
    assert ws.requests[0].query == {
        "api-version": "2023-04-01-preview",
        "$orderBy": "createdtime desc",
        "$top": "1",
    }
    assert (
        ws.jobs["latest-refs"]["properties"]["environmentId"] == WS_PATH + "/environments/my-env/versions/5"
    )
    assert ws.assets("data") == {"train-data": ["1", "2"]}


def test_mlflow_metrics_over_rest(ws: FakeWorkspace, project: Path) -> None:
    ml = ws.ml_client()
    ml.jobs.create_or_update(_remote_job("metrics-job"))
    ws.set_metrics("metrics-job", {"train_loss": [(1, 2.0), (2, 1.5), (3, 1.0)], "eval_loss": [(3, 1.2)]})
    headers = {"Authorization": "Bearer " + ws.credential.get_token("https://ml.azure.com/.default").token}
    base = ws.mlflow_tracking_uri + "/api/2.0/mlflow"
    run = requests.get(
        f"{base}/runs/get", params={"run_id": "metrics-job"}, headers=headers, timeout=5
    ).json()["run"]
    assert {m["key"]: m["value"] for m in run["data"]["metrics"]} == {"train_loss": 1.0, "eval_loss": 1.2}
    history = requests.get(
        f"{base}/metrics/get-history",
        params={"run_id": "metrics-job", "metric_key": "train_loss"},
        headers=headers,
        timeout=5,
    ).json()["metrics"]
    assert [(p["step"], p["value"]) for p in history] == [(1, 2.0), (2, 1.5), (3, 1.0)]
    assert requests.get(f"{base}/runs/get", params={"run_id": "nope"}, timeout=5).status_code == 404
    assert ws.requests[-1].api_version is None


def test_credential_tokens_are_jwts_with_the_scope_audience() -> None:
    cred = FakeCredential()
    token = cred.get_token("https://ml.azure.com/.default")
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert claims["aud"] == "https://ml.azure.com"
    assert claims["exp"] > time.time() + 60
    assert token.expires_on == claims["exp"]
    info = cred.get_token_info("https://management.azure.com/.default")
    assert (
        jwt.decode(info.token, options={"verify_signature": False})["aud"] == "https://management.azure.com"
    )


def test_patches_are_restored_and_unknown_routes_are_listed() -> None:
    from azure.ai.ml.operations import _job_operations
    from azure.ai.ml.operations._run_history_constants import RunHistoryConstants
    from azure.core.pipeline.transport import HttpTransport

    before = (
        HttpTransport.sleep,
        _job_operations.get_git_properties,
        RunHistoryConstants._WAIT_COMPLETION_POLLING_INTERVAL_MAX,
        requests.adapters.HTTPAdapter.send,
    )
    with FakeWorkspace() as ws:
        assert _job_operations.get_git_properties() == {}
        assert RunHistoryConstants._WAIT_COMPLETION_POLLING_INTERVAL_MAX == 0
        resp = requests.get("https://example.com/anything", timeout=5)
        assert resp.status_code == 404
        assert [r.url for r in ws.unmatched] == ["https://example.com/anything"]
    after = (
        HttpTransport.sleep,
        _job_operations.get_git_properties,
        RunHistoryConstants._WAIT_COMPLETION_POLLING_INTERVAL_MAX,
        requests.adapters.HTTPAdapter.send,
    )
    assert before == after
    assert not ws.active


@pytest.mark.fake_workspace(workspace="from-marker", computes={"cpu": "Standard_DS3_v2"})
def test_plugin_fixture(fake_workspace: FakeWorkspace) -> None:
    assert fake_workspace.active
    assert fake_workspace.workspace == "from-marker"
    ml = fake_workspace.ml_client()
    assert ml.compute.get("cpu").size == "Standard_DS3_v2"


def test_update_archive_restore_go_through_run_history(ws: FakeWorkspace, project: Path) -> None:
    from azure.ai.ml.constants import ListViewType

    ml = ws.ml_client()
    ml.jobs.create_or_update(_remote_job("meta", tags={"a": "1"}))
    ml.jobs.update("meta", tags={"b": "2"})
    patch = ws.requests_to("PATCH", "/experiments/proj/runs/meta")[0]
    assert patch.host == "eastus2.api.azureml.ms" and patch.json == {"tags": {"b": "2"}}
    assert ws.jobs["meta"]["properties"]["tags"] == {"a": "1", "b": "2"}

    ml.jobs.archive("meta")
    assert list(ml.jobs.list()) == []
    assert [j.name for j in ml.jobs.list(list_view_type=ListViewType.ARCHIVED_ONLY)] == ["meta"]
    ml.jobs.restore("meta")
    assert [j.name for j in ml.jobs.list()] == ["meta"]
    assert list(ml.jobs.list(parent_job_name="meta")) == []
    assert ws.unmatched == []


def test_mlflow_client_reads_recorded_metrics(
    ws: FakeWorkspace, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracking = pytest.importorskip("mlflow.tracking")
    monkeypatch.setenv(
        "MLFLOW_TRACKING_TOKEN", ws.credential.get_token("https://ml.azure.com/.default").token
    )
    ws.ml_client().jobs.create_or_update(_remote_job("tracked"))
    ws.set_metrics("tracked", {"train_loss": [(1, 0.5), (2, 0.25)]})
    client = tracking.MlflowClient(tracking_uri=ws.mlflow_tracking_uri)
    run = client.get_run("tracked")
    assert run.data.metrics == {"train_loss": 0.25}
    assert [(m.step, m.value) for m in client.get_metric_history("tracked", "train_loss")] == [
        (1, 0.5),
        (2, 0.25),
    ]
    assert ws.requests[-1].path.endswith("/api/2.0/mlflow/metrics/get-history")


def test_config_and_environment_name_the_workspace(ws: FakeWorkspace, tmp_path: Path) -> None:
    from azure.ai.ml import MLClient

    ml = MLClient.from_config(ws.credential, path=str(ws.write_config(tmp_path)))
    assert ml.compute.get("gpu-cluster").size == "Standard_NC24ads_A100_v4"
    assert ws.environ["AZUREML_WORKSPACE_NAME"] == "ws"


def test_finetuning_job_status_advances_once_per_jobs_get(ws: FakeWorkspace) -> None:
    """azure-ai-ml reads a FineTuning job twice per jobs.get; each jobs.get is still one step of progress."""
    from azure.ai.ml.entities._inputs_outputs import Input
    from azure.ai.ml.entities._job.finetuning.custom_model_finetuning_job import CustomModelFineTuningJob

    ml = ws.ml_client()
    job = CustomModelFineTuningJob(
        task="ChatCompletion",
        model=Input(
            type="mlflow_model", path="azureml://registries/azureml/models/Phi-4-mini-instruct/versions/3"
        ),
        training_data=Input(type="uri_file", path="azureml:train:1"),
        hyperparameters={"num_train_epochs": "1"},
        outputs={"registered_model": {"type": "mlflow_model", "name": "ft-model"}},
        name="ft-progress",
    )
    ml.jobs.create_or_update(job)
    seen = [ml.jobs.get("ft-progress").status for _ in range(3)]
    assert seen == ["Queued", "Running", "Completed"]
