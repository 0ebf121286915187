"""FineTuneClient.submit against FakeWorkspace: every job kind, once per spec, dry runs, uploads, conflicts."""

from __future__ import annotations

from typing import Any

import pytest

from azfinetune.client import FineTuneClient
from azfinetune.client._client import _submittable
from azfinetune.errors import ConflictError, DataError, SpecError, UserInputError
from azfinetune.testing import FakeWorkspace
from tests.client.conftest import Project, job_puts, kind_params


@pytest.mark.parametrize("kind", kind_params())
def test_each_kind_submits_once_and_a_repeat_returns_it(
    kind: str, project: Project, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    spec = project.spec(kind)
    first = client.submit(spec)
    assert first.created and first.name in ws.jobs
    assert first.name.startswith(f"t-{kind}-")
    assert first.studio_url and first.name in first.studio_url
    body = ws.jobs[first.name]["properties"]
    assert body["tags"]["azfinetune.spec_hash"] == first.spec_hash
    # Local data went up once, content-addressed, and the job points there (no local path in the body).
    assert {u.role for u in first.uploads} == {"train", "validation"}
    assert all(u.uploaded and "/azfinetune/data/" in u.uri for u in first.uploads)
    assert str(project.root) not in str(body)

    ws.clear_requests()
    again = client.submit(spec)
    assert not again.created and again.name == first.name
    assert ws.uploads == [] and len(ws.requests) <= 2
    assert list(ws.jobs) == [first.name]


def test_repeat_of_a_command_job_is_one_request_and_no_upload(
    project: Project, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    spec = project.spec("command", env="environments/finetune-gpu")  # the project's own environment folder
    client.submit(spec)
    ws.clear_requests()
    client.submit(spec)
    assert [(r.method, r.status) for r in ws.requests] == [("GET", 200)]
    assert ws.uploads == []


def test_a_changed_spec_makes_a_new_job_without_uploading_unchanged_data(
    project: Project, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    spec = project.spec("command")
    first = client.submit(spec)
    ws.clear_requests()
    second = client.submit(spec, overrides=["training.epochs=2"])
    assert second.created and second.name != first.name
    assert not any(u.uploaded for u in second.uploads)
    assert [u.uri for u in second.uploads] == [u.uri for u in first.uploads]
    assert ws.uploads == []  # code is found by hash, data by content address
    assert len(ws.jobs) == 2


def test_changed_data_changes_the_job_name(
    project: Project, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    spec = project.spec("command")
    first = client.submit(spec)
    (project.root / "data" / "train.jsonl").write_text(
        (project.root / "data" / "train.jsonl").read_text() * 2
    )
    second = client.submit(spec)
    assert second.name != first.name and second.created
    assert [u.uploaded for u in second.uploads if u.role == "train"] == [True]
    assert [u.uploaded for u in second.uploads if u.role == "validation"] == [False]


def test_new_run_suffix_submits_the_same_spec_again(
    project: Project, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    spec = project.spec("command")
    first = client.submit(spec)
    second = client.submit(spec, run_suffix="r2")
    assert second.name == f"{first.name}-r2" and second.created
    assert second.spec_hash == first.spec_hash
    assert sorted(ws.jobs) == sorted([first.name, second.name])


@pytest.mark.parametrize("kind", kind_params())
def test_dry_run_builds_and_sends_nothing(
    kind: str, project: Project, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    result = client.submit(project.spec(kind), dry_run=True)
    assert result.dry_run and not result.created and result.job is not None
    assert result.job.name == result.name
    assert ws.requests == []


def test_dry_run_needs_no_workspace(project: Project) -> None:
    client = FineTuneClient.from_config()
    result = client.submit(project.spec("command"), dry_run=True)
    assert result.name.startswith("t-command-")
    with pytest.raises(UserInputError, match="no Azure ML workspace configured"):
        client.submit(project.spec("command"))


def test_spec_errors_send_nothing(project: Project, ws: FakeWorkspace, client: FineTuneClient) -> None:
    with pytest.raises(SpecError):
        client.submit(project.spec("command"), overrides=["method.lora.r=0"])
    (project.root / "data" / "train.jsonl").write_text(
        '{"messages": [{"role": "bot", "content": "x"}]}\n' * 12
    )
    with pytest.raises(DataError, match=r"data\.train"):
        client.submit(project.spec("command"))
    assert ws.requests == []


def test_an_existing_job_from_another_spec_is_a_conflict(
    project: Project, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    spec = project.spec("command")
    name = client.submit(spec, dry_run=True).name
    from azure.ai.ml import command

    ws.ml_client().jobs.create_or_update(
        command(
            name=name,
            command="echo hi",
            environment="azureml:my-env:3",
            compute="gpu-cluster",
            tags={"x": "y"},
        )
    )
    with pytest.raises(ConflictError, match="something other than azfinetune") as info:
        client.submit(spec)
    assert info.value.job_name == name and "--new-run" in str(info.value)
    assert len(job_puts(ws)) == 1  # only the foreign job's


def test_lost_answer_to_the_job_put_is_settled_by_reading_the_job(
    project: Project, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    ws.lose_response("PUT", r"/jobs/[^/]+$", times=20)  # every PUT of the job is applied, its answer lost
    result = client.submit(project.spec("command"))
    assert result.created and list(ws.jobs) == [result.name]
    assert len(job_puts(ws)) >= 2  # azure-core retried the PUT; the same body is an update, not a second job


def test_already_exists_with_the_same_spec_hash_is_success(
    project: Project, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    spec = project.spec("command")
    first = client.submit(spec)
    # Another client raced us: our GET said "no job", the PUT says it exists (immutable fields differ).
    ws.inject(
        "GET",
        f"/jobs/{first.name}$",
        status=404,
        code="UserError",
        message=f"Job '{first.name}' was not found",
    )
    ws.inject(
        "PUT",
        f"/jobs/{first.name}$",
        status=400,
        code="UserError",
        message="A job with this name already exists.",
    )
    again = client.submit(spec)
    assert again.name == first.name and list(ws.jobs) == [first.name]


def test_command_job_is_sent_as_the_node_with_the_same_body(project: Project) -> None:
    from azfinetune.spec import load_spec
    from azfinetune.targets import build_job

    job = build_job(load_spec(project.spec("command", env="environments/finetune-gpu")))
    node = _submittable(job)
    assert type(node).__name__ == "Command"

    def body(entity: Any) -> dict[str, Any]:
        data: dict[str, Any] = entity._to_rest_object().as_dict()
        data["properties"].pop("environmentId", None)
        return data

    assert body(node._to_job()) == body(job)
    assert node.environment is job.environment


def test_job_uses_managed_identity_and_keyvault_references(
    project: Project, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    result = client.submit(project.spec("command"))
    body = ws.jobs[result.name]["properties"]
    assert body["identity"] == {"identityType": "Managed"}
    assert "--secret HF_TOKEN=keyvault://kv-test/hf-token" in body["command"]
    assert body["environmentVariables"] == {}


def test_serverless_checks_the_workspace_region(project: Project) -> None:
    from azfinetune.targets.serverless import ServerlessRegionError

    with FakeWorkspace(location="westeurope") as ws:
        client = FineTuneClient(ml_client=ws.ml_client())
        with pytest.raises(ServerlessRegionError, match="westeurope"):
            client.submit(project.spec("serverless"))
        assert job_puts(ws) == [] and ws.uploads == []


def test_serverless_creates_a_marketplace_subscription_once(
    project: Project, ws: FakeWorkspace, client: FineTuneClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azfinetune.targets import serverless as serverless_checks

    # The catalog holds only Microsoft models today; pretend this one is a Marketplace offer.
    monkeypatch.setattr(serverless_checks, "needs_marketplace_subscription", lambda spec: True)
    spec = project.spec("serverless")
    client.submit(spec)
    assert list(ws.marketplace_subscriptions) == ["Phi-4-mini-instruct-sub"]
    ws.clear_requests()
    client.submit(spec, overrides=["training.epochs=3"])
    assert ws.count("PUT", "/marketplaceSubscriptions/") == 0  # it exists: not created again
    assert ws.count("GET", "/marketplaceSubscriptions/") == 1


def test_retired_serverless_model_is_refused_unless_allowed(
    project: Project, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    from azfinetune.targets.serverless import ServerlessRetiredError

    spec = project.spec("serverless", name="t-retired")
    spec.write_text(spec.read_text().replace("phi-4-mini-instruct", "phi-3-mini-4k-instruct"))
    with pytest.raises(ServerlessRetiredError, match="--allow-retired"):
        client.submit(spec)
    assert ws.requests == []
    assert client.submit(spec, allow_retired=True).created


def test_latest_model_label_is_pinned_at_submit(
    project: Project, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    ws.add_registry_model("Phi-4-mini-instruct", 3)
    ws.add_registry_model("Phi-4-mini-instruct", 7)
    spec = project.spec("finetuning-job")
    spec.write_text(
        spec.read_text().replace(
            "model: phi-4-mini-instruct",
            "model: azureml://registries/azureml/models/Phi-4-mini-instruct/labels/latest",
        )
    )
    result = client.submit(spec)
    sent = ws.jobs[result.name]["properties"]["fineTuningDetails"]["model"]["uri"]
    assert sent == "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/7"


def test_a_spec_object_with_overrides(project: Project, ws: FakeWorkspace, client: FineTuneClient) -> None:
    from azfinetune.spec import load_spec

    spec = load_spec(project.spec("serverless"))
    result = client.submit(spec, overrides={"training.epochs": 3})
    assert (
        ws.jobs[result.name]["properties"]["fineTuningDetails"]["hyperParameters"]["num_train_epochs"] == "3"
    )
