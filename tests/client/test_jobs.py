"""get, list, wait, stream and cancel on FakeWorkspace: statuses, service errors, bounded waits, no SAS links."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from azfinetune.client import FineTuneClient, JobEvent
from azfinetune.errors import JobFailedError, NotFoundError, QuotaError, ServiceError
from azfinetune.testing import FakeWorkspace
from tests.client.conftest import Project


@pytest.fixture
def job(project: Project, client: FineTuneClient) -> str:
    return client.submit(project.spec("serverless")).name


def test_get(job: str, ws: FakeWorkspace, client: FineTuneClient) -> None:
    info = client.get(job)
    assert info.name == job and info.status in ("Queued", "Running")
    assert info.spec_name == "t-serverless" and info.spec_hash and info.kind == "finetuning"
    assert info.created_at is not None and info.studio_url and info.error is None
    with pytest.raises(NotFoundError, match="job nope not found"):
        client.get("nope")


def test_wait_returns_completed(project: Project, ws: FakeWorkspace, client: FineTuneClient) -> None:
    name = client.submit(project.spec("command")).name
    seen: list[str | None] = []
    info = client.wait(name, timeout=600, on_status=seen.append)
    assert info.status == "Completed" and seen[-1] == "Completed"
    assert seen == sorted(set(seen), key=seen.index)  # each status reported once


def test_wait_raises_with_the_service_message(job: str, ws: FakeWorkspace, client: FineTuneClient) -> None:
    ws.fail_job(job, code="UserError", message="train.jsonl: line 3 is not JSON")
    with pytest.raises(JobFailedError) as info:
        client.wait(job, timeout=600)
    assert str(info.value).startswith(f"job {job} failed: UserError: train.jsonl: line 3 is not JSON")
    assert info.value.job_name == job
    ws.fail_job(job)  # the default is the quota failure
    with pytest.raises(QuotaError, match="quota of 0"):
        client.wait(job, timeout=600)


def test_wait_is_bounded(job: str, ws: FakeWorkspace, client: FineTuneClient) -> None:
    ws.set_status(job, "Queued")
    ws.clear_requests()
    with pytest.raises(ServiceError, match="still Queued after 120 s") as info:
        client.wait(job, timeout=120, poll_interval=30)
    assert "azfinetune cancel" in str(info.value)
    assert 3 <= len(ws.requests) <= 20  # polls grow 5 s → 30 s; sleeps are zeroed by the fake but counted
    assert sum(ws.sleeps) == pytest.approx(120, abs=1)


def test_stream_yields_status_changes_and_new_lines_only(
    job: str, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    ws.set_progression(["Queued", "Running", "Running", "Completed"], job=job)
    ws.set_logs(job, {"user_logs/std_log.txt": "a\nb\n", "system_logs/x.txt": "noise\n"})
    events = list(client.stream(job, timeout=600))
    statuses = [e.status for e in events if e.kind == "status"]
    lines = [e.text for e in events if e.kind == "log"]
    assert statuses == ["Running", "Completed"] or statuses == ["Queued", "Running", "Completed"]
    assert lines == ["a", "b"]  # each line once, the user's log only
    assert all(isinstance(e, JobEvent) and "sig=" not in str(e.to_dict()) for e in events)


def test_stream_once_without_follow(job: str, ws: FakeWorkspace, client: FineTuneClient) -> None:
    ws.set_status(job, "Running")
    ws.set_logs(job, {"user_logs/std_log.txt": "epoch 1\n"})
    events = list(client.stream(job, follow=False))
    assert [(e.kind, e.text) for e in events] == [("status", ""), ("log", "epoch 1")]


def test_stream_of_a_failed_job_raises_after_the_last_lines(
    job: str, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    ws.set_logs(job, {"user_logs/std_log.txt": "Traceback ...\nRuntimeError: boom\n"})
    ws.fail_job(job, code="ScriptExecution", message="RuntimeError: boom")
    seen: list[JobEvent] = []
    with pytest.raises(JobFailedError, match="ScriptExecution: RuntimeError: boom"):
        for event in client.stream(job, timeout=600):
            seen.append(event)
    assert seen[-1].text == "RuntimeError: boom"


def test_stream_timeout_is_bounded(job: str, ws: FakeWorkspace, client: FineTuneClient) -> None:
    ws.set_status(job, "Running")
    events = list(client.stream(job, timeout=60))
    assert [e.status for e in events if e.kind == "status"] == ["Running"]


def test_cancel(job: str, ws: FakeWorkspace, client: FineTuneClient) -> None:
    ws.set_status(job, "Running")
    info = client.cancel(job)
    assert info.status in ("CancelRequested", "Canceled")
    assert ws.count("POST", f"/jobs/{job}/cancel") == 1


def test_list(project: Project, ws: FakeWorkspace, client: FineTuneClient) -> None:
    names = [client.submit(project.spec("serverless", name=f"l-{i}")).name for i in range(3)]
    listed = client.list()
    assert [i.name for i in listed] == list(reversed(names))  # newest first
    assert [i.name for i in client.list(limit=2)] == list(reversed(names))[:2]
    assert [i.name for i in client.list(spec_name="l-1")] == [names[1]]
    ws.set_status(names[0], "Failed")
    assert [i.name for i in client.list(status=["failed", "Canceled"])] == [names[0]]
    assert client.list(since=datetime.now(timezone.utc) + timedelta(hours=1)) == []
    assert len(client.list(since=timedelta(hours=1))) == 3


def test_the_azure_ml_client_is_a_job_service() -> None:
    from azfinetune.client import FineTuneClient, JobService

    assert isinstance(FineTuneClient(workspace_name="w"), JobService)
