"""`azfinetune run SPEC --local --resume`: a local run stopped mid-way continues from the newest complete checkpoint
of the previous run of the same spec, and ends as the uninterrupted run does."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from azfinetune.cli import cli
from azfinetune.cli._app import run_with_boundary
from azfinetune.errors import LocalRunError, RunInterrupted
from azfinetune.local import prepare_local_run, previous_checkpoint
from azfinetune.spec import load_spec

SPEC = """\
name: resume-local
task: chat-completion
model: ./model
data: {{train: train.jsonl}}
method:
  technique: lora
  lora: {{r: 8, alpha: 16, dropout: 0.0, target_modules: all-linear}}
training:
  max_steps: 8
  learning_rate: 2.0e-2
  lr_scheduler: constant
  warmup_ratio: 0.0
  per_device_batch_size: 4
  gradient_accumulation_steps: 1
  max_seq_length: 64
  precision: fp32
  gradient_checkpointing: false
  logging_steps: 1
  seed: 0
{save}target: {{kind: local}}
"""


def _write_spec(folder: Path, *, save: str = "  save_steps: 2\n") -> Path:
    path = folder / "resume.yaml"
    path.write_text(SPEC.format(save=save))
    return path


@pytest.fixture
def fake_project(tmp_path: Path, chat_file: Path) -> Path:
    """A spec beside a model folder that is only a config.json: enough for everything but training."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    return _write_spec(tmp_path)


def _fake_checkpoint(run: Path, step: int, *, complete: bool = True) -> Path:
    folder = run / "checkpoints" / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"w")
    (folder / "adapter_config.json").write_text("{}")
    if complete:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def _fake_run(outputs: Path, spec_path: Path, run_id: str) -> Path:
    run = outputs / prepare_local_run(load_spec(spec_path), outputs_root=outputs / "scratch").name / run_id
    run.mkdir(parents=True)
    (run / "command.json").write_text("{}")
    return run


def test_resume_picks_the_latest_run_that_saved_a_checkpoint(fake_project: Path, tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    spec = load_spec(fake_project)
    with pytest.raises(LocalRunError, match="nothing to resume: no earlier run of resume-local"):
        previous_checkpoint(spec, outputs_root=outputs)
    first = _fake_run(outputs, fake_project, "20260101-120000")
    _fake_checkpoint(first, 2)
    _fake_checkpoint(first, 4)
    _fake_checkpoint(first, 6, complete=False)  # Ctrl-C while it was written
    assert previous_checkpoint(spec, outputs_root=outputs).path == first / "checkpoints" / "checkpoint-4"
    # Runs started in the same second: <stamp>-10 came after <stamp>-2. The latest that saved a checkpoint counts
    # (a resumed run stopped again before its first checkpoint is passed over).
    _fake_checkpoint(_fake_run(outputs, fake_project, "20260101-120000-2"), 6)
    latest = _fake_run(outputs, fake_project, "20260101-120000-10")
    _fake_checkpoint(latest, 2)
    _fake_run(outputs, fake_project, "20260101-120000-11")
    point = previous_checkpoint(spec, outputs_root=outputs)
    assert (point.path, point.step) == (latest / "checkpoints" / "checkpoint-2", 2)
    plan = prepare_local_run(spec, outputs_root=outputs, resume=True)
    assert plan.resume == point and plan.inputs["resume_from"] == str(point.path)
    command = plan.command
    assert command[command.index("--resume-from") + 1] == str(point.path)
    assert command[command.index("--checkpoint-dir") + 1] == str(plan.run_dir / "checkpoints")


def test_resume_says_why_there_is_nothing_to_resume(tmp_path: Path, chat_file: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    spec_path = _write_spec(tmp_path, save="")
    outputs = tmp_path / "outputs"
    _fake_run(outputs, spec_path, "20260101-120000")
    with pytest.raises(LocalRunError) as caught:
        previous_checkpoint(load_spec(spec_path), outputs_root=outputs)
    assert "1 earlier run of resume-local" in caught.value.message
    assert caught.value.hint == "set training.save_steps so that a run saves checkpoints to resume from"


def test_the_cli_resumes_and_refuses_clearly(
    fake_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    outputs = tmp_path / "outputs"

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = run_with_boundary(cli, list(args))
        out, err = capsys.readouterr()
        return code, out + err

    args = ("run", str(fake_project), "--local", "--resume", "--outputs", str(outputs), "--dry-run")
    code, text = run(*args)
    assert code == 2 and "nothing to resume" in text and "Traceback" not in text
    earlier = _fake_run(outputs, fake_project, "20260101-120000")
    _fake_checkpoint(earlier, 4)
    code, text = run(*args)
    assert code == 0, text
    assert f"resuming from checkpoint-4 (step 4) of the run {earlier}" in text
    assert f"--resume-from {earlier / 'checkpoints' / 'checkpoint-4'}" in text
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(
        fake_project.read_text().replace(
            "target: {kind: local}",
            "target: {kind: pipeline, compute: gpu-a100, instance_type: Standard_NC24ads_A100_v4}",
        )
    )
    code, text = run("run", str(pipeline), "--local", "--resume", "--dry-run")
    assert code == 2 and "--resume continues one training run" in text


# -- the real thing, on the tiny random Phi-3 ------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from azfinetune.tiny_model import chat_texts, make_chat_dataset, make_tiny_phi3

    torch.set_num_threads(2)
    folder = tmp_path_factory.mktemp("resume-local")
    make_tiny_phi3(folder / "model", texts=chat_texts())
    make_chat_dataset(folder / "train.jsonl", n=40, seed=0)
    return _write_spec(folder)


def _env() -> dict[str, str]:
    return {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1"}


def _losses(metrics: dict[str, Any]) -> dict[int, float]:
    return {int(h["step"]): float(h["loss"]) for h in metrics["loss_history"] if "loss" in h}


@pytest.mark.training
def test_a_run_stopped_mid_way_resumes_and_ends_as_the_uninterrupted_one(
    tiny_project: Path, tmp_path: Path
) -> None:
    from azfinetune.local import run_local

    spec = load_spec(tiny_project)
    whole = run_local(spec, outputs_root=tmp_path / "whole", extra_env=_env())
    assert whole.metrics["train_steps"] == 8

    stopped_at: list[int] = []

    def ctrl_c_after_the_second_checkpoint(progress: dict[str, Any]) -> None:
        # Step 5 is logged after step 4's checkpoint (the second) was saved: stop there, as Ctrl-C would.
        if progress.get("step", 0) >= 5 and not stopped_at:
            stopped_at.append(progress["step"])
            raise KeyboardInterrupt

    outputs = tmp_path / "outputs"
    with pytest.raises(RunInterrupted) as caught:
        run_local(
            spec, outputs_root=outputs, on_progress=ctrl_c_after_the_second_checkpoint, extra_env=_env()
        )
    assert caught.value.hint == "continue it with --resume (from its newest checkpoint)"

    seen: list[int] = []
    resumed = run_local(
        spec,
        outputs_root=outputs,
        resume=True,
        on_progress=lambda p: seen.append(p["step"]),
        extra_env=_env(),
    )
    point = resumed.plan.resume
    assert point is not None and point.step >= 4 and point.step % 2 == 0
    assert point.path.parents[1] != resumed.run_dir  # the earlier run's checkpoint, in its own folder
    assert "resuming from checkpoint-" in resumed.plan.log_file.read_text()
    # Same end, a curve that continues: the first step logged after the resume comes after the checkpoint, and
    # the resumed run's losses are those of the uninterrupted run.
    assert resumed.metrics["train_steps"] == whole.metrics["train_steps"] == 8
    assert resumed.metrics["resumed_from_step"] == point.step
    assert seen[0] == point.step + 1 and seen[-1] == 8
    after, before = _losses(resumed.metrics), _losses(whole.metrics)
    assert sorted(after) == list(range(1, 9))
    assert after == pytest.approx(before, rel=1e-4)
    assert (resumed.adapter_dir / "adapter_model.safetensors").is_file()
    assert os.path.isdir(resumed.run_dir / "checkpoints" / "checkpoint-8")
