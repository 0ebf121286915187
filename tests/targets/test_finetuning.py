"""Serverless and finetuning-job specs -> CustomModelFineTuningJob: REST body, YAML round-trip, submit, deploy."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from azfinetune.errors import BuildError
from azfinetune.spec import FineTuneSpec, Task, load_spec
from azfinetune.targets import build_job, job_name
from azfinetune.targets._export import finetuning_job_yaml_dict
from azfinetune.targets._finetuning import (
    TASK_TYPES,
    build_finetuning_job,
    finetuning_hyperparameters,
    finetuning_model_uri,
    latest_model_reference,
    pin_model_version,
    registered_model_name,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "jobs" / "examples"
SNAPSHOTS = ROOT / "tests" / "snapshots"
UPDATE = os.environ.get("UPDATE_SNAPSHOT") == "1"

# example file -> golden snapshot of its REST body
GOLDEN = {
    "phi4-mini-serverless.yaml": "serverless-phi4-mini.json",
    "phi3-mini-serverless.yaml": "serverless-phi3-mini-retired.json",
    "phi4-mini-finetuning-job.yaml": "serverless-phi4-mini-finetuning-job.json",
}


def rest_body(job: Any) -> dict[str, Any]:
    body: dict[str, Any] = job._to_rest_object().as_dict()
    return body


def normalized(body: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """The body with what differs between machines and releases replaced: the spec folder and the version."""
    text = json.dumps(body, sort_keys=True).replace(str(base_dir.resolve()), "<spec_dir>")
    out: dict[str, Any] = json.loads(text)
    tags = out["properties"].get("tags") or {}
    if "azfinetune.version" in tags:
        tags["azfinetune.version"] = "<version>"
    return out


def spec_for(tmp_path: Path, chat_file: Path, text: str) -> FineTuneSpec:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return load_spec(path)


SERVERLESS = """
name: s1
model: phi-4-mini-instruct
data: {train: train.jsonl}
target: {kind: serverless}
"""


# -- the REST body ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("example", sorted(GOLDEN))
def test_golden_rest_body(example: str) -> None:
    spec = load_spec(EXAMPLES / example)
    body = normalized(rest_body(build_job(spec)), EXAMPLES)
    snapshot = SNAPSHOTS / GOLDEN[example]
    if UPDATE:
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    assert snapshot.exists(), f"missing {snapshot}; create it with UPDATE_SNAPSHOT=1"
    assert body == json.loads(snapshot.read_text())


def test_serverless_body_has_the_wire_shape() -> None:
    spec = load_spec(EXAMPLES / "phi3-mini-serverless.yaml")
    props = rest_body(build_job(spec))["properties"]
    details = props["fineTuningDetails"]
    assert props["jobType"] == "FineTuning"
    assert details["taskType"] == "chatCompletion"  # lower-case first letter on the wire
    assert details["modelProvider"] == "Custom"
    assert details["model"] == {
        "uri": "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/15",
        "jobInputType": "mlflow_model",
    }
    assert details["trainingData"]["jobInputType"] == "uri_file"
    assert details["validationData"]["jobInputType"] == "uri_file"
    assert details["hyperParameters"] == {
        "learning_rate": "0.0002",
        "num_train_epochs": "3",
        "per_device_train_batch_size": "4",
    }
    assert all(isinstance(v, str) for v in details["hyperParameters"].values())
    assert props["outputs"]["registered_model"] == {
        "assetName": "phi3-mini-serverless-ft",
        "jobOutputType": "mlflow_model",
    }
    # Serverless: the service's compute, so none is sent.
    assert "computeId" not in props and "resources" not in props and "queueSettings" not in props


def test_name_tags_and_experiment_are_the_specs() -> None:
    spec = load_spec(EXAMPLES / "phi4-mini-serverless.yaml")
    job = build_job(spec)
    assert job.name == job_name(spec)
    assert job.display_name == job.experiment_name == spec.name
    assert job.tags["azfinetune.spec_name"] == spec.name
    assert job.tags["azfinetune.spec_hash"].startswith(job.name.rsplit("-", 1)[-1])


def test_task_mapping_covers_every_task_and_goes_lower_camel_on_the_wire() -> None:
    from azure.ai.ml.constants._job.finetuning import FineTuningTaskTypes

    assert set(TASK_TYPES) == {t.value for t in Task}
    azure_values = {v for k, v in vars(FineTuningTaskTypes).items() if k.isupper()}
    assert set(TASK_TYPES.values()) <= azure_values
    assert TASK_TYPES["chat-completion"] == "ChatCompletion"
    assert TASK_TYPES["summarization"] == "TextSummarization"


def test_text_completion_finetuning_job(tmp_path: Path, chat_file: Path) -> None:
    spec = spec_for(
        tmp_path,
        chat_file,
        "name: t1\ntask: text-completion\nmodel: phi-4-mini-instruct\ndata: {train: train.jsonl}\n"
        "target: {kind: finetuning-job, compute: gpu-a100}\n",
    )
    props = rest_body(build_job(spec))["properties"]
    assert props["fineTuningDetails"]["taskType"] == "textCompletion"
    assert props["computeId"] == "gpu-a100"


def test_finetuning_job_instance_types_and_job_tier(tmp_path: Path, chat_file: Path) -> None:
    spec = spec_for(
        tmp_path,
        chat_file,
        "name: t2\nmodel: phi-4-mini-instruct\ndata: {train: train.jsonl}\n"
        "target: {kind: finetuning-job, instance_types: [Standard_NC24ads_A100_v4], job_tier: spot}\n",
    )
    props = rest_body(build_job(spec))["properties"]
    assert props["resources"] == {"instanceTypes": ["Standard_NC24ads_A100_v4"]}
    assert props["queueSettings"] == {"jobTier": "Spot"}
    assert "computeId" not in props


# -- model, data, hyperparameters, output ---------------------------------------------------------------------


def test_spec_without_validation_data_builds_without_create_finetuning_job(
    tmp_path: Path, chat_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import azure.ai.ml.finetuning as finetuning

    def broken(**_kwargs: Any) -> Any:  # azure-ai-ml 1.35: UnboundLocalError without validation_data
        raise UnboundLocalError("cannot access local variable 'validation_data_input'")

    monkeypatch.setattr(finetuning, "create_finetuning_job", broken)
    spec = spec_for(tmp_path, chat_file, SERVERLESS)
    job = build_job(spec)
    assert job.validation_data is None
    details = rest_body(job)["properties"]["fineTuningDetails"]
    assert "validationData" not in details
    assert details["trainingData"]["uri"] == str(chat_file)


def test_remote_data_references_pass_through(tmp_path: Path, chat_file: Path) -> None:
    spec = spec_for(
        tmp_path,
        chat_file,
        "name: r1\nmodel: phi-4-mini-instruct\ntarget: {kind: serverless}\n"
        "data: {train: 'azureml:chat-train:3', validation: 'azureml://datastores/workspaceblobstore/paths/v.jsonl'}\n",
    )
    details = rest_body(build_job(spec))["properties"]["fineTuningDetails"]
    assert details["trainingData"]["uri"] == "azureml:chat-train:3"
    assert details["validationData"]["uri"] == "azureml://datastores/workspaceblobstore/paths/v.jsonl"


def test_hyperparameters_are_the_set_ones_as_plain_strings(tmp_path: Path, chat_file: Path) -> None:
    spec = spec_for(tmp_path, chat_file, SERVERLESS)
    assert finetuning_hyperparameters(spec) == {}  # unset: the service's model-specific defaults apply
    spec = spec_for(
        tmp_path,
        chat_file,
        SERVERLESS + "training: {epochs: 2, learning_rate: 2.0e-5, per_device_batch_size: 8}\n",
    )
    assert finetuning_hyperparameters(spec) == {
        "learning_rate": "0.00002",
        "num_train_epochs": "2",
        "per_device_train_batch_size": "8",
    }


def test_model_uri_forms(tmp_path: Path, chat_file: Path) -> None:
    spec = spec_for(tmp_path, chat_file, SERVERLESS)
    assert finetuning_model_uri(spec) == "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/3"
    hf = spec_for(
        tmp_path, chat_file, SERVERLESS.replace("phi-4-mini-instruct", "hf:microsoft/Phi-4-mini-instruct")
    )
    assert finetuning_model_uri(hf) == finetuning_model_uri(spec)
    uri = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/7"
    pinned = spec_for(tmp_path, chat_file, SERVERLESS.replace("phi-4-mini-instruct", uri))
    assert finetuning_model_uri(pinned) == uri
    other = "azureml://registries/my-registry/models/my-llm/versions/2"
    maap = spec_for(
        tmp_path,
        chat_file,
        f"name: o1\nmodel: {other}\ndata: {{train: train.jsonl}}\ntarget: {{kind: finetuning-job, compute: gpu-a}}\n",
    )
    assert finetuning_model_uri(maap) == other


def test_unpinned_catalog_model_is_left_at_latest_until_submit(
    tmp_path: Path, chat_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import azfinetune.catalog as catalog
    import azfinetune.targets._finetuning as finetuning

    def unpinned(ref: str) -> Any:
        info = catalog.find_model(ref)
        return info.model_copy(update={"registry_version": None}) if info is not None else None

    monkeypatch.setattr(finetuning, "find_model", unpinned)
    spec = spec_for(tmp_path, chat_file, SERVERLESS)
    job = build_job(spec)
    assert job.model.path == "azureml://registries/azureml/models/Phi-4-mini-instruct/labels/latest"
    assert latest_model_reference(job) == ("azureml", "Phi-4-mini-instruct")
    pin_model_version(job, 5)
    assert job.model.path == "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/5"
    assert latest_model_reference(job) is None
    with pytest.raises(BuildError, match="already pinned"):
        pin_model_version(job, 6)


def test_registered_model_name(tmp_path: Path, chat_file: Path) -> None:
    spec = spec_for(tmp_path, chat_file, SERVERLESS)
    assert registered_model_name(spec) == job_name(spec)
    named = spec_for(tmp_path, chat_file, SERVERLESS + "register: {model_name: support-bot}\n")
    assert registered_model_name(named) == "support-bot"
    assert build_job(named).outputs["registered_model"].name == "support-bot"


def test_builder_refuses_other_kinds(tmp_path: Path, chat_file: Path) -> None:
    spec = spec_for(
        tmp_path,
        chat_file,
        "name: c1\nmodel: phi-4-mini-instruct\ndata: {train: train.jsonl}\ntarget: {kind: command, compute: gpu-a}\n",
    )
    with pytest.raises(BuildError, match="not command"):
        build_finetuning_job(spec)


# -- YAML ---------------------------------------------------------------------------------------------------


def _copy_example(example: str, tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    target = tmp_path / example
    shutil.copy(EXAMPLES / example, target)
    return target


def _resolved_body(job: Any, base: Path) -> dict[str, Any]:
    """REST body with relative data paths made absolute against the YAML's folder."""
    body = rest_body(job)
    details = body["properties"]["fineTuningDetails"]
    for key in ("trainingData", "validationData"):
        if key in details and not Path(details[key]["uri"]).is_absolute() and ":" not in details[key]["uri"]:
            details[key]["uri"] = str((base / details[key]["uri"]).resolve())
    return body


@pytest.mark.parametrize("example", sorted(GOLDEN))
def test_yaml_round_trips_through_load_job(example: str, tmp_path: Path) -> None:
    from azure.ai.ml import load_job

    spec = load_spec(_copy_example(example, tmp_path))
    job = build_job(spec)
    document = finetuning_job_yaml_dict(job, base_dir=tmp_path)
    assert document["type"] == "finetuning" and document["task"] == "chat_completion"
    assert document["training_data"]["path"] == "data/chat-train.jsonl"  # portable, not azureml:/abs/path
    assert all(isinstance(v, str) for v in document["hyperparameters"].values())
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    loaded = load_job(path)
    assert _resolved_body(loaded, tmp_path) == rest_body(job)


@pytest.mark.parametrize("example", sorted(GOLDEN))
def test_export_job_round_trips(example: str, tmp_path: Path) -> None:
    from azure.ai.ml import load_job

    from azfinetune.targets import export_job

    spec = load_spec(_copy_example(example, tmp_path))
    job = build_job(spec)
    text = export_job(job, "yaml", base_dir=tmp_path)
    path = tmp_path / "job.yaml"
    path.write_text(text)
    loaded = load_job(path)
    assert _resolved_body(loaded, tmp_path) == rest_body(job)


# -- submit and deploy against the FakeWorkspace ----------------------------------------------------------


def test_serverless_job_without_validation_submits(fake_workspace: Any, tmp_path: Path) -> None:
    spec = load_spec(_copy_example("phi4-mini-serverless.yaml", tmp_path))
    assert spec.data.validation is None
    job = build_job(spec)
    ml_client = fake_workspace.ml_client()
    created = ml_client.jobs.create_or_update(job)
    assert created.name == job_name(spec)
    stored = fake_workspace.jobs[created.name]["properties"]
    assert stored["jobType"] == "FineTuning"
    details = stored["fineTuningDetails"]
    assert "validationData" not in details
    assert details["trainingData"]["uri"].startswith(
        "azureml://datastores/workspaceblobstore/paths/LocalUpload/"
    )
    assert details["hyperParameters"] == {"num_train_epochs": "2", "per_device_train_batch_size": "2"}
    assert "computeId" not in stored
    assert [u for u in fake_workspace.uploads if u.method == "PUT"]  # the local file was uploaded
    fetched = ml_client.jobs.get(created.name)
    assert fetched.outputs["registered_model"].name == registered_model_name(spec)


def test_deploy_serverless_creates_an_endpoint(fake_workspace: Any, tmp_path: Path) -> None:
    from azfinetune.deploy import (
        deploy_serverless,
        endpoint_name,
        finetuned_model_id,
        registered_model_of_job,
    )

    spec = load_spec(_copy_example("phi4-mini-serverless.yaml", tmp_path))
    ml_client = fake_workspace.ml_client()
    created = ml_client.jobs.create_or_update(build_job(spec))
    fake_workspace.set_status(created.name, "Completed")
    model = registered_model_of_job(ml_client.jobs.get(created.name))
    model_id = finetuned_model_id(ml_client, model)
    assert model_id == (
        f"azureml://locations/{fake_workspace.location}/workspaces/{fake_workspace.workspace_guid}"
        f"/models/{model}/versions/1"
    )
    name = endpoint_name(model)
    assert len(name) <= 32 and name[0].isalpha()
    endpoint = deploy_serverless(ml_client, model_id, name)
    assert endpoint.name == name
    assert endpoint.scoring_uri
    assert fake_workspace.serverless_endpoints[name]["properties"]["modelSettings"]["modelId"] == model_id


def test_deploy_command(fake_workspace: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from azfinetune.cli import cli
    from azfinetune.cli._app import run_with_boundary
    from azfinetune.client import use_ml_client

    spec = load_spec(_copy_example("phi4-mini-serverless.yaml", tmp_path))
    ml_client = fake_workspace.ml_client()
    created = ml_client.jobs.create_or_update(build_job(spec))
    fake_workspace.set_status(created.name, "Completed")
    capsys.readouterr()
    with use_ml_client(ml_client):
        code = run_with_boundary(cli, ["deploy", created.name, "--serverless", "--name", "support-bot"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "support-bot" in out and "/v1/chat/completions" in out
        assert "primaryKey" in out  # how to fetch the key; the key itself is never printed
        assert "support-bot" in fake_workspace.serverless_endpoints

        assert run_with_boundary(cli, ["deploy", created.name]) == 2  # --serverless is the only mode
        assert "--serverless" in capsys.readouterr().err


def test_deploy_command_unknown_job(fake_workspace: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from azfinetune.cli import cli
    from azfinetune.cli._app import run_with_boundary
    from azfinetune.client import use_ml_client

    with use_ml_client(fake_workspace.ml_client()):
        assert run_with_boundary(cli, ["deploy", "no-such-job", "--serverless"]) == 1
    assert "not found" in capsys.readouterr().err
    assert not fake_workspace.serverless_endpoints
