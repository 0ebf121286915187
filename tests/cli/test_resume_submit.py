"""`azfinetune submit SPEC --resume-from JOB` against FakeWorkspace: the new job reads the other job's checkpoints
output, has its own name, and is refused (nothing sent) when that job cannot be resumed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from azfinetune.testing import FakeWorkspace
from tests.cli.conftest import CliResult
from tests.client.conftest import Project, job_puts

Run = Callable[..., CliResult]
CHECKPOINTING = "  save_steps: 50\n"


def _spec(
    project: Project, kind: str = "command", *, name: str | None = None, technique: str = "lora"
) -> str:
    path = project.spec(kind, name=name)
    text = path.read_text().replace(
        "training: {epochs: 1, max_seq_length: 1024}",
        "training:\n  epochs: 1\n  max_seq_length: 1024\n" + CHECKPOINTING,
    )
    text = text.replace("method: {technique: lora}", f"method: {{technique: {technique}}}")
    path.write_text(text)
    return str(path)


def _submitted(ws: FakeWorkspace, run_cli: Run, spec: str, *extra: str) -> str:
    before = set(ws.jobs)
    result = run_cli("submit", spec, *extra)
    assert result.code == 0, result.text
    (name,) = set(ws.jobs) - before
    return name


def _props(ws: FakeWorkspace, name: str) -> dict[str, Any]:
    properties: dict[str, Any] = ws.jobs[name]["properties"]
    return properties


@pytest.mark.parametrize("kind", ["command", "pipeline"])
def test_a_new_job_resumes_the_checkpoints_of_a_failed_one(
    kind: str, project: Project, ws: FakeWorkspace, run_cli: Run
) -> None:
    spec = _spec(project, kind)
    first = _submitted(ws, run_cli, spec)
    assert _props(ws, first)["outputs"]["checkpoints"]["mode"] == "ReadWriteMount"
    ws.set_status(first, "Failed")

    ws.clear_requests()
    second = _submitted(ws, run_cli, spec, "--resume-from", first)
    assert second != first and second.startswith(f"t-{kind}-")  # the resume source is part of the name
    props = _props(ws, second)
    assert props["inputs"]["resume_from"] == {
        "jobInputType": "uri_folder",
        "mode": "ReadOnlyMount",
        "uri": f"azureml://jobs/{first}/outputs/checkpoints",
    }
    assert props["outputs"]["checkpoints"]["mode"] == "ReadWriteMount"
    if kind == "command":
        assert "--resume-from ${{inputs.resume_from}}" in props["command"]
        assert "--checkpoint-dir ${{outputs.checkpoints}}" in props["command"]
    else:
        finetune = props["jobs"]["finetune"]
        assert finetune["inputs"]["resume_from"]["value"] == "${{parent.inputs.resume_from}}"
    # The source was read once before anything was created.
    reads = [r for r in ws.requests if r.method == "GET" and r.path.endswith(f"/jobs/{first}")]
    assert len(reads) == 1
    assert ws.requests.index(reads[0]) < ws.requests.index(job_puts(ws)[0])

    # Idempotent like any submit: the same resume again is the same job.
    again = run_cli("submit", spec, "--resume-from", first)
    assert again.code == 0 and f"already submitted: {second}" in again.out


def test_the_dry_run_shows_the_resume_input_and_reads_nothing(
    project: Project, ws: FakeWorkspace, run_cli: Run
) -> None:
    result = run_cli("submit", _spec(project), "--resume-from", "earlier-job-1", "--dry-run")
    assert result.code == 0, result.text
    assert '"uri": "azureml://jobs/earlier-job-1/outputs/checkpoints"' in result.out
    assert ws.requests == []


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        pytest.param("missing", "no job {first} in this workspace", id="no-such-job"),
        pytest.param("running", "job {first} is Running: it may still write checkpoints", id="still-running"),
        pytest.param("no-checkpoints", "job {first} has no checkpoints output", id="saved-none"),
        pytest.param("other-technique", "job {first} trained technique dora", id="other-technique"),
    ],
)
def test_a_job_that_cannot_be_resumed_is_refused_before_anything_is_sent(
    setup: str, message: str, project: Project, ws: FakeWorkspace, run_cli: Run
) -> None:
    first = "gone-job-1"
    if setup != "missing":
        source = (
            str(project.spec("command", name="plain"))
            if setup == "no-checkpoints"
            else _spec(project, name="source", technique="dora" if setup == "other-technique" else "lora")
        )
        first = _submitted(ws, run_cli, source)
        ws.set_status(first, "Running" if setup == "running" else "Canceled")
    ws.clear_requests()
    result = run_cli("submit", _spec(project), "--resume-from", first)
    assert result.code == 2, result.text
    assert "training.resume_from" in result.err and message.format(first=first) in result.err
    assert "Traceback" not in result.text
    assert job_puts(ws) == [] and ws.uploads == []


def test_resume_from_names_a_job(project: Project, ws: FakeWorkspace, run_cli: Run) -> None:
    result = run_cli("submit", _spec(project), "--resume-from", "azureml://jobs/x/outputs/checkpoints")
    assert result.code == 2 and "must be the name of an Azure ML job" in result.err
    assert ws.requests == []


def test_low_priority_resume_path(project: Project, ws: FakeWorkspace, run_cli: Run) -> None:
    """priority: low: the pre-emptible job writes its checkpoints to a read-write output (a restarted attempt
    resumes from them by itself), and after a cancel or a failure a new job continues from them."""
    path = project.root / "t-command.yaml"
    spec = _spec(project)
    path.write_text(
        path.read_text().replace(
            "instance_type: Standard_NC24ads_A100_v4}",
            "instance_type: Standard_NC24ads_A100_v4, priority: low}",
        )
    )
    first = _submitted(ws, run_cli, spec)
    props = _props(ws, first)
    assert props["queueSettings"]["jobTier"].lower() == "spot"
    assert props["outputs"]["checkpoints"] == {"jobOutputType": "uri_folder", "mode": "ReadWriteMount"}
    ws.set_status(first, "Canceled")
    second = _submitted(ws, run_cli, spec, "--resume-from", first)
    assert _props(ws, second)["queueSettings"]["jobTier"].lower() == "spot"
    assert _props(ws, second)["inputs"]["resume_from"]["uri"] == f"azureml://jobs/{first}/outputs/checkpoints"
