"""FakeFoundry against the real clients: openai.OpenAI, AzureOpenAI and AIProjectClient, unchanged, over loopback."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from azure.identity import get_bearer_token_provider

from azfinetune.testing import BASE_MODEL_ERROR, FakeFoundry

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

CHAT = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
GLOBAL = {"trainingType": "GlobalStandard"}


@pytest.fixture
def fake() -> Iterator[FakeFoundry]:
    with FakeFoundry() as running:
        yield running


@pytest.fixture
def client(fake: FakeFoundry) -> Any:
    return fake.openai_client()


def upload(client: Any, data: bytes = CHAT * 12, name: str = "train.jsonl") -> Any:
    return client.files.create(file=(name, io.BytesIO(data), "application/jsonl"), purpose="fine-tune")


def processed(client: Any, data: bytes = CHAT * 12) -> str:
    item = upload(client, data)
    while item.status not in ("processed", "error"):
        item = client.files.retrieve(item.id)
    assert item.status == "processed", item
    return str(item.id)


def create(client: Any, file_id: str, model: str = "Ministral-3B", **kwargs: Any) -> Any:
    kwargs.setdefault("extra_body", GLOBAL)
    return client.fine_tuning.jobs.create(model=model, training_file=file_id, **kwargs)


# -- authentication: the token audience follows the endpoint form ------------------------------------------------


def test_project_client_asks_for_the_ai_azure_scope(fake: FakeFoundry, client: Any) -> None:
    assert list(client.fine_tuning.jobs.list()) == []
    assert ("https://ai.azure.com/.default",) in fake.credential.scopes_requested
    request = fake.requests[-1]
    assert request.path == "/api/projects/fake-project/openai/v1/fine_tuning/jobs"
    assert request.headers["authorization"].startswith("Bearer ey")
    assert "AIProjectClient" in request.headers["user-agent"]


def test_a_token_for_the_other_audience_is_refused(fake: FakeFoundry) -> None:
    wrong = get_bearer_token_provider(fake.credential, "https://cognitiveservices.azure.com/.default")
    project = openai.OpenAI(base_url=f"{fake.project_endpoint}/openai/v1", api_key=wrong, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        project.fine_tuning.jobs.list()
    assert "audience is incorrect (https://ai.azure.com)" in str(caught.value)
    # The same token is right for the resource endpoint.
    resource = openai.OpenAI(base_url=f"{fake.resource_endpoint}/openai/v1", api_key=wrong, max_retries=0)
    assert resource.fine_tuning.jobs.list().data == []


def test_api_key_as_header_or_bearer_value() -> None:
    with FakeFoundry(api_key="key-123") as fake:
        keyed = openai.OpenAI(
            base_url=f"{fake.resource_endpoint}/openai/v1", api_key="key-123", max_retries=0
        )
        assert keyed.files.list().data == []
        azure = openai.AzureOpenAI(
            azure_endpoint=fake.resource_endpoint,
            api_key="key-123",
            api_version="2025-04-01-preview",
            max_retries=0,
        )
        assert azure.files.list().data == []
        assert fake.requests[-1].headers["api-key"] == "key-123"
        bad = openai.OpenAI(base_url=f"{fake.resource_endpoint}/openai/v1", api_key="nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.files.list()


def test_the_dated_preview_path_needs_its_api_version(fake: FakeFoundry) -> None:
    provider = get_bearer_token_provider(fake.credential, "https://cognitiveservices.azure.com/.default")
    azure = openai.AzureOpenAI(
        azure_endpoint=fake.resource_endpoint,
        azure_ad_token_provider=provider,
        api_version="2025-04-01-preview",
        max_retries=0,
    )
    assert azure.fine_tuning.jobs.list().data == []
    assert fake.requests[-1].query["api-version"] == "2025-04-01-preview"
    other = openai.AzureOpenAI(
        azure_endpoint=fake.resource_endpoint,
        azure_ad_token_provider=provider,
        api_version="2024-10-21",
        max_retries=0,
    )
    with pytest.raises(openai.NotFoundError):
        other.fine_tuning.jobs.list()


# -- files ---------------------------------------------------------------------------------------------------------


def test_upload_is_multipart_and_processed_after_a_poll(fake: FakeFoundry, client: Any) -> None:
    item = upload(client, CHAT * 12, "train-abc.jsonl")
    assert (item.status, item.filename, item.bytes, item.purpose) == (
        "pending",
        "train-abc.jsonl",
        len(CHAT) * 12,
        "fine-tune",
    )
    assert fake.requests[-1].headers["content-type"].startswith("multipart/form-data; boundary=")
    assert client.files.retrieve(item.id).status == "processed"
    assert [f.id for f in client.files.list(purpose="fine-tune")] == [item.id]
    assert client.files.content(item.id).read() == CHAT * 12


def test_a_file_that_is_not_chat_jsonl_ends_in_error(client: Any) -> None:
    item = upload(client, b'{"prompt": "a", "completion": "b"}\n' * 12)
    item = client.files.retrieve(item.id)
    assert item.status == "error"
    assert "jsonlValidationFailed" in (item.status_details or "") and "messages" in item.status_details


def test_upload_with_another_purpose_is_refused(client: Any) -> None:
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("a.jsonl", io.BytesIO(CHAT), "application/jsonl"), purpose="assistants")


# -- jobs: the create body the service takes ------------------------------------------------------------------------


def test_missing_training_type_gets_the_misleading_base_model_error(fake: FakeFoundry, client: Any) -> None:
    file_id = processed(client)
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model="Ministral-3B", training_file=file_id)
    assert caught.value.code == "invalidPayload"
    assert BASE_MODEL_ERROR in str(caught.value)
    # A training type the model does not offer (Developer is for OpenAI models) reads the same.
    with pytest.raises(openai.BadRequestError, match="does not support fine-tuning"):
        create(client, file_id, extra_body={"trainingType": "developerTier"})
    # So does a model Foundry does not fine-tune.
    with pytest.raises(openai.BadRequestError, match="does not support fine-tuning"):
        create(client, file_id, model="Phi-4-mini-instruct")
    assert fake.jobs == {}


def test_a_job_needs_processed_files_and_ten_examples(fake: FakeFoundry, client: Any) -> None:
    pending = upload(client)
    with pytest.raises(openai.BadRequestError, match="is pending"):
        create(client, str(pending.id))
    few = processed(client, CHAT * 9)
    with pytest.raises(openai.BadRequestError, match="at least 10"):
        create(client, few)
    with pytest.raises(openai.BadRequestError, match="not found"):
        create(client, "file-missing")


@pytest.mark.parametrize(
    ("hyperparameters", "param"),
    [
        ({"n_epochs": 11}, "n_epochs"),
        ({"n_epochs": 2.5}, "n_epochs"),
        ({"batch_size": 64}, "batch_size"),
        ({"learning_rate_multiplier": 0}, "learning_rate_multiplier"),
        ({"warmup": 1}, "warmup"),
    ],
)
def test_hyperparameters_out_of_range_are_refused(
    client: Any, hyperparameters: dict[str, Any], param: str
) -> None:
    file_id = processed(client)
    method = {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}
    with pytest.raises(openai.BadRequestError) as caught:
        create(client, file_id, method=method)
    assert caught.value.body["param"] == param


def test_unknown_body_keys_are_refused(client: Any) -> None:
    with pytest.raises(openai.BadRequestError, match="training_type"):
        create(client, processed(client), extra_body={**GLOBAL, "training_type": "GlobalStandard"})


def test_the_job_runs_through_the_services_states(fake: FakeFoundry, client: Any) -> None:
    job = create(client, processed(client), suffix="bot-1a2b3c4d", metadata={"k": "v"}, seed=3)
    assert job.status == "pending"  # Azure's first status; openai's type would say validating_files or queued
    assert job.id.startswith("ftjob-") and job.suffix == "bot-1a2b3c4d" and job.metadata == {"k": "v"}
    assert client.fine_tuning.jobs.checkpoints.list(job.id).data == []  # only once the job has finished
    statuses = [client.fine_tuning.jobs.retrieve(job.id).status for _ in range(3)]
    assert statuses == ["running", "succeeded", "succeeded"]
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.fine_tuned_model == f"Ministral-3B.ft-{job.id[6:]}-bot-1a2b3c4d"
    assert done.trained_tokens and done.result_files
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert messages[0] == "Job enqueued. Waiting for jobs ahead to complete."
    assert messages[1] == "Job started." and messages[-1] == "Job succeeded."
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert len(checkpoints) == 3 and checkpoints[0].step_number == 4  # the three most recent, newest first
    results = client.files.content(done.result_files[0]).read().decode()
    assert results.splitlines()[0] == "step,train_loss,train_mean_token_accuracy"


def test_events_and_jobs_page_by_cursor(fake: FakeFoundry, client: Any) -> None:
    file_id = processed(client)
    ids = [create(client, file_id).id for _ in range(3)]
    page = client.fine_tuning.jobs.list(limit=2)
    assert page.has_more and [j.id for j in page.data] == ids[::-1][:2]
    assert [j.id for j in client.fine_tuning.jobs.list(limit=1)] == ids[::-1]  # auto-pagination with after=
    assert fake.requests[-1].query["after"] == ids[1]  # the last page: after the second-oldest job


def test_events_and_checkpoints_are_get_not_post(fake: FakeFoundry, client: Any) -> None:
    job = create(client, processed(client))
    with pytest.raises(openai.APIStatusError) as caught:
        client.post(f"/fine_tuning/jobs/{job.id}/events", cast_to=object, body={})
    assert caught.value.status_code == 405


def test_cancel_pause_and_resume(fake: FakeFoundry, client: Any) -> None:
    file_id = processed(client)
    job = create(client, file_id)
    client.fine_tuning.jobs.retrieve(job.id)  # running
    with pytest.raises(openai.BadRequestError, match="only for OpenAI models"):
        client.fine_tuning.jobs.pause(job.id)
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError, match="cannot be cancelled"):
        client.fine_tuning.jobs.cancel(job.id)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    gpt = create(
        client, file_id, model="gpt-4.1-mini-2025-04-14", extra_body={"trainingType": "developerTier"}
    )
    client.fine_tuning.jobs.retrieve(gpt.id)
    assert client.fine_tuning.jobs.pause(gpt.id).status == "pausing"
    assert client.fine_tuning.jobs.retrieve(gpt.id).status == "paused"
    assert client.fine_tuning.jobs.resume(gpt.id).status == "resuming"
    assert [client.fine_tuning.jobs.retrieve(gpt.id).status for _ in range(2)] == ["running", "succeeded"]


# -- faults --------------------------------------------------------------------------------------------------------


def test_429_carries_retry_after_and_openai_honours_it(fake: FakeFoundry) -> None:
    client = fake.openai_client(max_retries=2)
    fake.fail(429, path="fine_tuning/jobs$", retry_after=1, retry_after_ms=5)
    assert client.fine_tuning.jobs.list().data == []
    first, second = fake.requests[-2:]
    assert (first.status, first.fault, second.status) == (429, "status:429", 200)
    assert second.headers["x-stainless-retry-count"] == "1"


def test_5xx_is_answered_with_the_azure_error_shape(fake: FakeFoundry) -> None:
    client = fake.openai_client(max_retries=0)
    fake.fail(503, method="GET", times=1)
    with pytest.raises(openai.InternalServerError) as caught:
        client.files.list()
    assert caught.value.status_code == 503 and caught.value.body["code"] == "serviceUnavailable"


def test_a_lost_answer_makes_a_second_job_when_the_client_retries_blindly(fake: FakeFoundry) -> None:
    """Why azfinetune never lets openai retry a create: the service did it, the answer was lost, openai sent it again."""
    retrying = fake.openai_client(max_retries=1)
    file_id = processed(retrying)
    fake.lose(method="POST", path="fine_tuning/jobs$")
    job = create(retrying, file_id)
    assert len(fake.jobs) == 2 and job.id == list(fake.jobs)[-1]
    assert [r.fault for r in fake.requests if r.method == "POST" and r.route == "fine_tuning/jobs"] == [
        "lost",
        None,
    ]


def test_a_dropped_request_is_not_carried_out(fake: FakeFoundry) -> None:
    client = fake.openai_client(max_retries=0)
    file_id = processed(client)
    fake.drop(method="POST", path="fine_tuning/jobs$")
    with pytest.raises(openai.APIConnectionError):
        create(client, file_id)
    assert fake.jobs == {}


def test_chaos_fails_about_the_rate_asked(fake: FakeFoundry) -> None:
    client = fake.openai_client(max_retries=0)
    fake.chaos(0.3, kinds=("429", "503"), seed=1)
    failures = 0
    for _ in range(100):
        try:
            client.files.list()
        except (openai.RateLimitError, openai.InternalServerError):
            failures += 1
    assert 18 <= failures <= 42


# -- lifecycle -----------------------------------------------------------------------------------------------------


def test_stop_closes_the_port() -> None:
    fake = FakeFoundry()
    fake.start()
    port = int(fake.url.rsplit(":", 1)[1])
    fake.stop()
    fake.stop()  # idempotent
    with socket.socket() as probe, pytest.raises(OSError):
        probe.settimeout(1)
        probe.connect(("127.0.0.1", port))
    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.url


@pytest.mark.disable_socket
def test_without_loopback_sockets_the_fake_says_which_marker_to_use() -> None:
    with pytest.raises(RuntimeError, match=r"allow_hosts\(\['127.0.0.1'\]\)"):
        FakeFoundry().start()


def test_the_request_log_shows_what_was_sent(fake: FakeFoundry, client: Any) -> None:
    file_id = processed(client)
    create(client, file_id, suffix="s")
    body = fake.created_jobs()[0]
    assert body["trainingType"] == "GlobalStandard" and body["suffix"] == "s"
    assert json.loads(fake.requests[-1].body)["model"] == "Ministral-3B"
    assert len(fake.uploads()) == 1


@pytest.mark.fake_foundry(project="p2", file_polls=0)
def test_the_pytest_fixture(fake_foundry: FakeFoundry) -> None:
    client = fake_foundry.openai_client(max_retries=0)
    assert fake_foundry.project_endpoint.endswith("/api/projects/p2")
    assert upload(client).status == "processed"  # file_polls=0: processed at once
