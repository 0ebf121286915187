"""FoundryClient against FakeFoundry: submit once (content-addressed uploads, a job found before it is made again),
follow, cancel, list, report — and repeated submits under faults that leave one job and one upload per file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azfinetune.client import FoundryClient, JobService, foundry_status
from azfinetune.errors import (
    AuthError,
    AzFineTuneError,
    DataError,
    JobFailedError,
    QuotaError,
    SpecError,
    SubmitError,
    UserInputError,
)
from azfinetune.spec import load_spec
from azfinetune.testing import FakeFoundry, FakeFoundryModel
from azfinetune.testing.fake_foundry import catalog_models

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

ROW = {
    "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello", "weight": 1}]
}


@pytest.fixture
def fake() -> Iterator[FakeFoundry]:
    with FakeFoundry() as running:
        yield running


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(ROW) for _ in range(12)) + "\n")
    valid = {**ROW, "messages": [*ROW["messages"][:1], {"role": "assistant", "content": "hey"}]}
    (tmp_path / "valid.jsonl").write_text("\n".join(json.dumps(valid) for _ in range(10)) + "\n")
    return tmp_path


def write(
    folder: Path, *, model: str = "Ministral-3B", target: str = "", extra: str = "", name: str = "bot"
) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nmodel: {model}\ndata: {{train: train.jsonl, validation: valid.jsonl}}\n"
        f"training: {{epochs: 2}}\ntarget: {{kind: foundry{', ' + target if target else ''}}}\n{extra}"
    )
    return path


def posts(fake: FakeFoundry, route: str) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.route == route]


# -- submit once -----------------------------------------------------------------------------------------------------


def test_submit_uploads_each_file_once_and_creates_the_job_once(fake: FakeFoundry, folder: Path) -> None:
    client = fake.client()
    first = client.submit(write(folder))
    assert first.created and first.name.startswith("ftjob-") and first.kind == "foundry"
    assert first.status == "Queued"  # the service's `pending`
    assert [(u.role, u.uploaded) for u in first.uploads] == [("train", True), ("validation", True)]
    body = fake.created_jobs()[0]
    assert body["trainingType"] == "GlobalStandard" and body["model"] == "Ministral-3B"
    assert body["training_file"] == first.uploads[0].uri and body["validation_file"] == first.uploads[1].uri
    assert body["metadata"]["azfinetune_job_key"] == first.spec_hash
    assert body["method"]["supervised"]["hyperparameters"] == {"n_epochs": 2}
    names = sorted(f.filename for f in fake.files.values())
    assert names[0].startswith("train-") and names[1].startswith("valid-")

    before = len(fake.requests)
    again = client.submit(write(folder))
    assert (again.name, again.created, again.uploads) == (first.name, False, [])
    assert [(r.method, r.route) for r in fake.requests[before:]] == [("GET", "fine_tuning/jobs")]
    assert len(fake.jobs) == 1 and len(posts(fake, "files")) == 2


def test_a_new_run_of_the_same_spec_reuses_the_uploads(fake: FakeFoundry, folder: Path) -> None:
    client = fake.client()
    first = client.submit(write(folder))
    second = client.submit(write(folder), run_suffix="r1")
    assert second.created and second.name != first.name
    assert [u.uploaded for u in second.uploads] == [False, False]  # found by their content-addressed names
    assert len(fake.jobs) == 2 and len(posts(fake, "files")) == 2


def test_changed_data_is_a_new_job_and_a_new_upload(fake: FakeFoundry, folder: Path) -> None:
    client = fake.client()
    client.submit(write(folder))
    with (folder / "train.jsonl").open("a") as handle:
        handle.write(json.dumps(ROW) + "\n")
    changed = client.submit(write(folder))
    assert changed.created and [u.uploaded for u in changed.uploads] == [True, False]
    assert len(fake.jobs) == 2


def test_the_same_file_for_train_and_validation_is_uploaded_once(fake: FakeFoundry, folder: Path) -> None:
    path = folder / "same.yaml"
    path.write_text(
        "name: same\nmodel: Qwen-32B\ndata: {train: train.jsonl, validation: train.jsonl}\ntarget: {kind: foundry}\n"
    )
    result = fake.client().submit(path)
    assert len(posts(fake, "files")) == 1
    assert result.uploads[0].uri == result.uploads[1].uri


def test_the_job_waits_for_the_service_to_process_its_files(folder: Path) -> None:
    with FakeFoundry(file_polls=3) as fake:
        fake.client().submit(write(folder))
        assert [f.status for f in fake.files.values()] == ["processed", "processed"]
        assert len(fake.sleeps) >= 4  # polled, through the transport sleep the fake records


def test_a_service_that_drops_metadata_still_finds_the_job_by_its_suffix(folder: Path) -> None:
    with FakeFoundry(keep_metadata=False) as fake:
        client = fake.client()
        first = client.submit(write(folder))
        again = client.submit(write(folder))
        assert (again.name, again.created) == (first.name, False)
        assert fake.openai_client().fine_tuning.jobs.retrieve(first.name).metadata is None
        assert len(fake.jobs) == 1


def test_dry_run_sends_nothing(fake: FakeFoundry, folder: Path) -> None:
    result = fake.client().submit(write(folder), dry_run=True)
    assert result.dry_run and not result.created and fake.requests == []
    assert result.job.body["trainingType"] == "GlobalStandard"


def test_offline_errors_send_nothing(fake: FakeFoundry, folder: Path) -> None:
    with pytest.raises(SpecError) as caught:
        fake.client().submit(write(folder, extra="method: {deepspeed: {stage: 2}}\n"))
    assert "method.deepspeed" in caught.value.paths
    (folder / "train.jsonl").write_text(json.dumps(ROW) + "\n")  # one example: the service needs ten
    with pytest.raises(DataError, match=r"data\.train"):
        fake.client().submit(write(folder))
    assert fake.requests == []


# -- faults: one job, one upload per file -----------------------------------------------------------------------------


def test_a_lost_create_answer_does_not_make_a_second_job(fake: FakeFoundry, folder: Path) -> None:
    fake.lose(method="POST", path="fine_tuning/jobs$")
    result = fake.client().submit(write(folder))
    assert result.created and len(fake.jobs) == 1 and result.name in fake.jobs
    assert len(posts(fake, "fine_tuning/jobs")) == 1  # looked up before trying again: found


def test_a_lost_upload_answer_does_not_upload_twice(fake: FakeFoundry, folder: Path) -> None:
    fake.lose(method="POST", path="files$", times=2)
    result = fake.client().submit(write(folder))
    assert len(posts(fake, "files")) == 2 and len(fake.files) == 2
    assert [u.uploaded for u in result.uploads] == [True, True]


def test_a_dropped_create_is_sent_again_after_the_lookup(fake: FakeFoundry, folder: Path) -> None:
    fake.drop(method="POST", path="fine_tuning/jobs$")
    fake.fail(503, method="POST", path="fine_tuning/jobs$", retry_after_ms=1)
    fake.client().submit(write(folder))
    assert len(fake.jobs) == 1 and len(posts(fake, "fine_tuning/jobs")) == 3


def test_429_waits_as_long_as_retry_after_says(fake: FakeFoundry, folder: Path) -> None:
    fake.fail(429, method="GET", path="fine_tuning/jobs$", retry_after=7)
    fake.client().submit(write(folder))
    assert 7.0 in fake.sleeps


@pytest.mark.parametrize("seed", range(12))
def test_repeated_submits_under_30_percent_faults_leave_one_job_and_one_upload_per_file(
    folder: Path, seed: int
) -> None:
    with FakeFoundry(seed=seed) as fake:
        fake.chaos(0.3, seed=seed)
        client = fake.client()
        spec = write(folder)
        names = set()
        for _ in range(4):  # the user submits again after a failure, and once more for good measure
            try:
                names.add(client.submit(spec).name)
            except AzFineTuneError:
                continue
        fake.calm()
        names.add(client.submit(spec).name)
        uploads = [f for f in fake.files.values() if f.purpose == "fine-tune"]
        assert len(fake.jobs) == 1, fake.requests
        assert names == set(fake.jobs)
        assert sorted(f.filename.split("-")[0] for f in uploads) == ["train", "valid"]
        assert sum(r.fault is not None for r in fake.requests) > 0


# -- follow, cancel, list, report ---------------------------------------------------------------------------------------


def test_wait_follows_the_job_to_completed(fake: FakeFoundry, folder: Path) -> None:
    client = fake.client()
    name = client.submit(write(folder)).name
    seen: list[str | None] = []
    info = client.wait(name, poll_interval=0.01, on_status=seen.append)
    assert seen == ["Running", "Completed"] and info.terminal  # submit saw Queued; each GET is a step
    assert info.display_name == fake.jobs[name].fine_tuned_model and info.compute == "GlobalStandard"
    assert info.spec_name == "bot" and info.spec_hash


def test_submit_wait(fake: FakeFoundry, folder: Path) -> None:
    assert fake.client().submit(write(folder), wait=True, timeout=60).status == "Completed"


def test_a_failed_job_raises_with_the_services_message(fake: FakeFoundry, folder: Path) -> None:
    fake.set_progression(
        ("pending", "running", "failed"), error={"code": "jsonlValidationFailed", "message": "bad row 3"}
    )
    client = fake.client()
    name = client.submit(write(folder)).name
    with pytest.raises(JobFailedError, match="bad row 3"):
        client.wait(name, poll_interval=0.01)
    assert client.get(name).error == "bad row 3"
    fake.set_progression(("pending", "failed"), error={"code": "quotaExceeded", "message": "no quota left"})
    other = client.submit(write(folder), run_suffix="r2").name
    with pytest.raises(QuotaError):
        client.wait(other, poll_interval=0.01)


def test_developer_jobs_paused_by_the_system_are_waited_through(fake: FakeFoundry, folder: Path) -> None:
    fake.set_progression(("pending", "running", "paused", "resuming", "running", "succeeded"))
    client = fake.client()
    name = client.submit(write(folder, model="gpt-4.1-mini", target="training_type: developer")).name
    seen: list[str | None] = []
    assert client.wait(name, poll_interval=0.01, on_status=seen.append).status == "Completed"
    assert seen == ["Running", "Paused", "Resuming", "Running", "Completed"]


def test_a_paused_global_job_ends_the_wait(fake: FakeFoundry, folder: Path) -> None:
    client = fake.client()
    name = client.submit(write(folder, model="gpt-4.1-mini")).name
    fake.advance(name, "running")
    assert client.pause(name).status == "Pausing"
    assert client.wait(name, poll_interval=0.01).status == "Paused"
    assert client.resume(name).status == "Resuming"


def test_wait_times_out_with_what_to_do(fake: FakeFoundry, folder: Path) -> None:
    fake.set_progression(("pending",) * 50)
    client = fake.client()
    name = client.submit(write(folder)).name
    with pytest.raises(AzFineTuneError, match="still Queued") as caught:
        client.wait(name, timeout=3, poll_interval=1)
    assert "azfinetune cancel" in str(caught.value)


def test_stream_gives_statuses_and_events_in_order(folder: Path) -> None:
    with FakeFoundry(events_newest_first=True) as fake:
        client = fake.client()
        name = client.submit(write(folder)).name
        events = list(client.stream(name, poll_interval=0.01))
        statuses = [e.status for e in events if e.kind == "status"]
        lines = [e.text for e in events if e.kind == "log"]
        assert statuses == ["Running", "Completed"]
        assert "Job enqueued" in lines[0] and lines[-1].endswith("Job succeeded.")
        assert any("training loss" in line for line in lines)
        assert len(lines) == len(set(lines))  # each event once


def test_cancel(fake: FakeFoundry, folder: Path) -> None:
    client = fake.client()
    name = client.submit(write(folder)).name
    assert client.cancel(name).status == "Canceled"
    before = len(posts(fake, f"fine_tuning/jobs/{name}/cancel"))
    assert client.cancel(name).status == "Canceled"  # finished: no second request
    assert len(posts(fake, f"fine_tuning/jobs/{name}/cancel")) == before == 1


def test_a_cancel_whose_answer_was_lost(fake: FakeFoundry, folder: Path) -> None:
    client = fake.client()
    name = client.submit(write(folder)).name
    fake.lose(method="POST", path="/cancel$")
    assert client.cancel(name).status == "Canceled"


def test_list_filters_and_keeps_to_azfinetunes_jobs(fake: FakeFoundry, folder: Path) -> None:
    client = fake.client()
    mine = client.submit(write(folder)).name
    other = client.submit(write(folder, name="other", model="Qwen-32B")).name
    file_id = next(iter(fake.files))
    fake.openai_client().fine_tuning.jobs.create(
        model="Qwen-32B", training_file=file_id, extra_body={"trainingType": "GlobalStandard"}
    )
    assert [i.name for i in client.list()] == [other, mine]
    assert len(client.list(all_jobs=True)) == 3
    assert [i.name for i in client.list(spec_name="bot")] == [mine]
    client.cancel(mine)
    assert [i.name for i in client.list(status="Canceled")] == [mine]
    assert [i.name for i in client.list(status="cancelled")] == [mine]  # the service's word works too
    assert len(client.list(limit=1)) == 1


def test_report_has_checkpoints_and_metrics(fake: FakeFoundry, folder: Path) -> None:
    client = fake.client()
    name = client.submit(write(folder)).name
    client.wait(name, poll_interval=0.01)
    report = client.report(name)
    assert [c["step_number"] for c in report.checkpoints] == [2, 3, 4]
    assert report.metrics["train_loss"] == 0.4 and report.metrics["train_tokens"] > 0
    assert report.to_dict()["job"]["status"] == "Completed"


# -- endpoints, credentials and errors ------------------------------------------------------------------------------------


def test_the_resource_endpoint_uses_the_cognitiveservices_scope(fake: FakeFoundry, folder: Path) -> None:
    client = fake.client(endpoint=fake.resource_endpoint)
    assert client.scope == "https://cognitiveservices.azure.com/.default"
    client.submit(write(folder))
    assert ("https://cognitiveservices.azure.com/.default",) in fake.credential.scopes_requested
    assert all(r.path.startswith("/openai/v1/") for r in fake.requests)


def test_an_api_key_from_the_environment_only_when_asked(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_FOUNDRY_KEY", "sekret-key-0123456789")
    with FakeFoundry(api_key="sekret-key-0123456789") as fake:
        client = FoundryClient(endpoint=fake.resource_endpoint, api_key_env="MY_FOUNDRY_KEY")
        client.submit(write(folder))
        assert fake.requests[-1].headers["authorization"] == "Bearer sekret-key-0123456789"
        assert fake.credential.scopes_requested == []
        monkeypatch.setenv("MY_FOUNDRY_KEY", "wrong-key-9876543210")
        with pytest.raises(AuthError) as caught:
            FoundryClient(endpoint=fake.resource_endpoint, api_key_env="MY_FOUNDRY_KEY").get("ftjob-x")
        assert "wrong-key" not in str(caught.value) and "sekret" not in str(caught.value)
    monkeypatch.delenv("MY_FOUNDRY_KEY")
    with pytest.raises(UserInputError, match="MY_FOUNDRY_KEY"):
        _ = FoundryClient(endpoint="https://r.openai.azure.com", api_key_env="MY_FOUNDRY_KEY").openai


class _WrongAudience:
    """A credential that hands out an Azure Resource Manager token whatever scope it is asked for."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        return self.inner.get_token("https://management.azure.com/.default")

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        return self.inner.get_token_info("https://management.azure.com/.default")


def test_a_refused_token_is_an_auth_error_naming_the_scope(fake: FakeFoundry) -> None:
    client = fake.client(credential=_WrongAudience(fake.credential))
    with pytest.raises(AuthError) as caught:
        client.list()
    assert caught.value.exit_code == 1 and "https://ai.azure.com/.default" in str(caught.value)
    assert "Foundry User" in str(caught.value)


def test_the_misleading_base_model_error_explains_its_causes(folder: Path) -> None:
    models = catalog_models()
    ministral = models["ministral-3b"]
    models["ministral-3b"] = FakeFoundryModel(**{**ministral.__dict__, "training_types": frozenset()})
    with (
        FakeFoundry(models=models) as fake,
        pytest.raises(SubmitError) as caught,
    ):  # not offered in this region
        fake.client().submit(write(folder))
    text = str(caught.value)
    assert "does not support fine-tuning" in text and "trainingType" in text and "region" in text


def test_no_endpoint_is_a_user_error_before_any_request(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_AI_PROJECT_ENDPOINT", raising=False)
    with pytest.raises(UserInputError, match="no Azure AI Foundry endpoint") as caught:
        FoundryClient.from_config(spec=load_spec(write(folder))).submit(write(folder))
    assert "AZURE_AI_PROJECT_ENDPOINT" in str(caught.value)


def test_endpoint_precedence(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_AI_PROJECT_ENDPOINT", "https://env.services.ai.azure.com/api/projects/p")
    spec = load_spec(write(folder, target="endpoint: https://spec.services.ai.azure.com/api/projects/p/"))
    assert (
        FoundryClient.from_config(spec=spec).endpoint == "https://spec.services.ai.azure.com/api/projects/p"
    )
    flag = FoundryClient.from_config(endpoint="https://flag.openai.azure.com/openai/v1", spec=spec)
    assert flag.endpoint == "https://flag.openai.azure.com" and not flag.is_project
    assert FoundryClient.from_config().endpoint.startswith("https://env.")


def test_status_vocabulary() -> None:
    assert [foundry_status(s) for s in ("pending", "running", "succeeded", "cancelled", "failed")] == [
        "Queued",
        "Running",
        "Completed",
        "Canceled",
        "Failed",
    ]
    assert foundry_status("pausing") == "Pausing" and foundry_status("weird") == "Weird"


def test_the_client_is_a_job_service_and_constructing_it_sends_nothing(fake: FakeFoundry) -> None:
    client = FoundryClient(endpoint=fake.project_endpoint)
    assert isinstance(client, JobService)
    assert fake.requests == []


def test_importing_azfinetune_does_not_import_openai() -> None:
    code = (
        "import sys, azfinetune, azfinetune.client, azfinetune.targets.foundry, azfinetune.cli; "
        "bad = [m for m in ('openai', 'azure.ai.projects', 'httpx2') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
