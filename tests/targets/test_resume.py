"""Checkpoints and resume in the spec and the Azure ML jobs: training.save_steps / save_total_limit /
resume_from, their rules, the read-write `checkpoints` output and the `resume_from` input."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from azfinetune.errors import SpecError
from azfinetune.spec import FineTuneSpec, spec_from_dict
from azfinetune.targets._common import job_name
from azfinetune.targets._entrypoint import entrypoint_args, entrypoint_inputs, entrypoint_outputs
from tests.conftest import ROOT, refused

if str(ROOT / "jobs" / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "jobs" / "src"))  # the entry point's own parser (`finetune.args`)


def _chat(path: Path, n: int = 8) -> None:
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def make_spec(tmp_path: Path, *, kind: str = "command", **training: Any) -> FineTuneSpec:
    _chat(tmp_path / "train.jsonl")
    _chat(tmp_path / "valid.jsonl", 4)
    env = tmp_path / "env"
    env.mkdir(exist_ok=True)
    (env / "Dockerfile").write_text("FROM python:3.11-slim\n")
    target: dict[str, Any] = {"kind": kind}
    if kind in ("command", "pipeline"):
        target.update(compute="gpu-a100", instance_type="Standard_NC24ads_A100_v4")
    data: dict[str, Any] = {
        "name": "resume-job",
        "model": "phi-3-mini-4k-instruct",
        "data": {"train": "train.jsonl", "validation": "valid.jsonl"},
        "training": training,
        "target": target,
        "environment": str(env),
    }
    if kind == "registry-pipeline":
        data["target"] = {"kind": kind, "compute": "gpu-a100", "instance_type": "Standard_NC24ads_A100_v4"}
        del data["environment"]
    return spec_from_dict(data, base_dir=tmp_path)


def _placeholders(spec: FineTuneSpec) -> list[str]:
    return entrypoint_args(
        spec,
        inputs={name: f"${{{{inputs.{name}}}}}" for name in entrypoint_inputs(spec)},
        outputs={name: f"${{{{outputs.{name}}}}}" for name in entrypoint_outputs(spec)},
    )


# -- the spec --------------------------------------------------------------------------------------------


def test_save_steps_is_a_positive_number_of_steps(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"training\.save_steps: must be ≥ 1, got 0"):
        make_spec(tmp_path, save_steps=0)
    with pytest.raises(SpecError, match=r"training\.save_steps"):
        make_spec(tmp_path, save_steps="often")
    with pytest.raises(SpecError, match=r"training\.save_total_limit: must be -1"):
        make_spec(tmp_path, save_total_limit=0)
    assert make_spec(tmp_path, save_steps=50, save_total_limit=2).training.save_steps == 50


def test_a_checkpoint_due_after_the_last_step_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        make_spec(tmp_path, save_steps=30, max_steps=20)
    (issue,) = caught.value.issues
    assert issue.path == "training.save_steps"
    assert "save_steps 30 is more than max_steps 20" in issue.message and "≤ 20" in (issue.hint or "")
    assert make_spec(tmp_path, save_steps=20, max_steps=20).training.save_steps == 20
    assert make_spec(tmp_path, save_steps=10_000).training.max_steps == -1  # by epochs: the job checks


def test_resume_from_is_a_job_name(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"training\.resume_from: must be the name of an Azure ML job"):
        make_spec(tmp_path, resume_from="azureml://jobs/x/outputs/checkpoints")
    assert make_spec(tmp_path, resume_from="resume-job-0123456789ab").training.resume_from


def test_unset_checkpoint_keys_leave_the_job_name_as_it_was(tmp_path: Path) -> None:
    plain = make_spec(tmp_path)
    assert {"save_steps", "resume_from"}.isdisjoint(plain.canonical_dict()["training"])
    # Setting them changes the job: another name, so the same spec with checkpoints is a new job.
    saving = make_spec(tmp_path, save_steps=10)
    resumed = make_spec(tmp_path, save_steps=10, resume_from="resume-job-0123456789ab")
    assert len({job_name(plain), job_name(saving), job_name(resumed)}) == 3
    assert saving.canonical_dict()["training"]["save_steps"] == 10


def test_the_registry_pipeline_refuses_step_checkpoints_and_resume(tmp_path: Path) -> None:
    error = refused(make_spec(tmp_path, kind="registry-pipeline", save_steps=10))
    assert [issue.path for issue in error.issues] == ["training.save_steps"]
    assert "target.kind: command or pipeline" in (error.issues[0].hint or "")
    error = refused(make_spec(tmp_path, kind="registry-pipeline", resume_from="resume-job-0123456789ab"))
    assert [issue.path for issue in error.issues] == ["training.resume_from"]


# -- the entry point's flags -----------------------------------------------------------------------------


def test_save_steps_reaches_the_entry_point(tmp_path: Path) -> None:
    args = _placeholders(make_spec(tmp_path, save_steps=25, save_total_limit=3))
    assert args[args.index("--save-steps") + 1] == "25" and args[args.index("--save-total-limit") + 1] == "3"
    assert "--save-steps" not in _placeholders(make_spec(tmp_path))


def test_the_value_sources_name_save_steps(tmp_path: Path) -> None:
    from azfinetune.targets._entrypoint import entrypoint_value_sources

    sources = {s.name: s for s in entrypoint_value_sources(make_spec(tmp_path, save_steps=25))}
    assert sources["--save-steps"].value == 25 and sources["--save-steps"].sent
    unset = {s.name: s for s in entrypoint_value_sources(make_spec(tmp_path))}["--save-steps"]
    assert not unset.sent and unset.note == "not sent: no step checkpoints"


def test_the_local_target_refuses_another_jobs_checkpoints(tmp_path: Path) -> None:
    error = refused(make_spec(tmp_path, kind="local", resume_from="resume-job-0123456789ab"))
    issue = next(issue for issue in error.issues if issue.path == "training.resume_from")
    assert "azfinetune run SPEC --local --resume" in (issue.hint or "")


# -- the Azure ML jobs -----------------------------------------------------------------------------------


def test_the_command_job_writes_checkpoints_to_a_read_write_output(tmp_path: Path) -> None:
    from azfinetune.targets import build_job

    job = build_job(make_spec(tmp_path, save_steps=25))
    output = job.outputs["checkpoints"]
    assert (output.type, output.mode) == ("uri_folder", "rw_mount")
    assert "--save-steps 25 --checkpoint-dir ${{outputs.checkpoints}}" in job.command
    assert "resume_from" not in job.inputs and "--resume-from" not in job.command
    # Checkpoints per epoch (save_total_limit alone) go there too; a run that saves none declares no output.
    assert "checkpoints" in build_job(make_spec(tmp_path, save_total_limit=2)).outputs
    plain = build_job(make_spec(tmp_path))
    assert "checkpoints" not in plain.outputs and "--checkpoint-dir" not in plain.command


def test_the_command_job_resumes_another_jobs_checkpoints(tmp_path: Path) -> None:
    from finetune.args import parse_args

    from azfinetune.targets import build_job

    job = build_job(make_spec(tmp_path, save_steps=4, max_steps=12, resume_from="earlier-job-1"))
    source = job.inputs["resume_from"]
    assert (source.type, source.path, source.mode) == (
        "uri_folder",
        "azureml://jobs/earlier-job-1/outputs/checkpoints",
        "ro_mount",
    )
    # The command line, with Azure ML's mounts filled in, parses in the entry point's own parser.
    mounts = {name: tmp_path / "mnt" / name for name in (*job.inputs, *job.outputs)}
    for folder in mounts.values():
        folder.mkdir(parents=True)
    for role in ("train", "validation"):
        mounts[role] = tmp_path / ("train.jsonl" if role == "train" else "valid.jsonl")
    words = [
        str(mounts[word[len("${{inputs.") : -2]])
        if word.startswith("${{inputs.")
        else str(mounts[word[len("${{outputs.") : -2]])
        if word.startswith("${{outputs.")
        else word
        for word in shlex.split(job.command)[3:]
    ]
    args = parse_args(words)
    assert (args.save_steps, args.max_steps) == (4, 12)
    assert args.checkpoint_dir == mounts["checkpoints"] and args.resume_from == mounts["resume_from"]


def test_the_pipeline_job_promotes_the_checkpoints_of_its_finetune_step(tmp_path: Path) -> None:
    from azfinetune.targets import build_job
    from azfinetune.targets._export import rest_body

    job = build_job(make_spec(tmp_path, kind="pipeline", save_steps=10, resume_from="earlier-job-1"))
    props = rest_body(job, base_dir=tmp_path)["properties"]
    assert props["outputs"]["checkpoints"] == {"jobOutputType": "uri_folder", "mode": "ReadWriteMount"}
    assert props["inputs"]["resume_from"] == {
        "jobInputType": "uri_folder",
        "mode": "ReadOnlyMount",
        "uri": "azureml://jobs/earlier-job-1/outputs/checkpoints",
    }
    finetune = props["jobs"]["finetune"]
    assert finetune["outputs"]["checkpoints"]["value"] == "${{parent.outputs.checkpoints}}"
    assert finetune["inputs"]["resume_from"]["value"] == "${{parent.inputs.resume_from}}"
    command = job.jobs["finetune"].component.command
    assert "--checkpoint-dir ${{outputs.checkpoints}}" in command
    assert "--resume-from ${{inputs.resume_from}}" in command
    plain = rest_body(build_job(make_spec(tmp_path, kind="pipeline")), base_dir=tmp_path)["properties"]
    assert "checkpoints" not in plain["outputs"]


def test_a_low_priority_job_without_checkpoints_is_warned(tmp_path: Path) -> None:
    from azfinetune.targets import check_spec

    spec = make_spec(tmp_path)
    spec.target.priority = "low"  # type: ignore[union-attr]
    warnings = check_spec(spec, data=False).warnings
    assert [w.path for w in warnings if w.path.startswith("training.")] == ["training.save_steps"]
    assert "starts again from step 0" in warnings[-1].message
    resumable = make_spec(tmp_path, save_steps=100)
    resumable.target.priority = "low"  # type: ignore[union-attr]
    assert not [w for w in check_spec(resumable, data=False).warnings if w.path.startswith("training.")]


def test_the_low_priority_example_carries_the_read_write_checkpoints_output() -> None:
    """The low-priority resume path: the example on spot VMs saves step checkpoints to a read-write mounted output,
    so the attempt Azure ML restarts after a pre-emption finds them (and the entry point resumes from them)."""
    from azfinetune.spec import load_spec
    from azfinetune.targets import build_job
    from tests.conftest import EXAMPLES

    spec = load_spec(EXAMPLES / "phi3-mini-qlora.yaml")
    assert spec.target.resources().priority == "low" and spec.training.save_steps
    job = build_job(spec)
    assert job.queue_settings.job_tier == "spot"
    assert job.outputs["checkpoints"].mode == "rw_mount"
    assert "--checkpoint-dir ${{outputs.checkpoints}}" in job.command
