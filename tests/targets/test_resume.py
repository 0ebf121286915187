"""Checkpoints and resume in the spec and the Azure ML jobs: training.save_steps / save_total_limit /
resume_from, their rules, the read-write `checkpoints` output and the `resume_from` input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from azfinetune.errors import SpecError
from azfinetune.spec import FineTuneSpec, spec_from_dict
from azfinetune.targets._common import job_name
from azfinetune.targets._entrypoint import entrypoint_args, entrypoint_inputs, entrypoint_outputs
from tests.conftest import refused


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
