"""The entry point's checkpoints and resume (finetune.checkpoints): the flags, the choice of the newest complete
checkpoint, and the TrainingArguments that save them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.jobs.helpers import EntryPointRun, contract_argv, minimal_chat_argv

Runner = Callable[..., EntryPointRun]


def test_the_checkpoint_flags_parse_and_are_checked(tmp_path: Path) -> None:
    from finetune.args import parse_args
    from finetune.errors import UsageError

    source = tmp_path / "earlier"
    source.mkdir()
    args = parse_args(
        minimal_chat_argv(
            tmp_path, "--save-steps", "5", "--checkpoint-dir", "ckpt", "--resume-from", str(source)
        )
    )
    assert (args.save_steps, args.checkpoint_dir, args.resume_from) == (5, Path("ckpt"), source)
    plain = parse_args(minimal_chat_argv(tmp_path))
    assert (plain.save_steps, plain.checkpoint_dir, plain.resume_from) == (None, None, None)
    with pytest.raises(SystemExit):
        parse_args(minimal_chat_argv(tmp_path, "--save-steps", "0"))
    with pytest.raises(UsageError, match="--save-steps 9 is more than --max-steps 8"):
        parse_args(minimal_chat_argv(tmp_path, "--save-steps", "9", "--max-steps", "8"))
    with pytest.raises(UsageError, match=r"--resume-from .*: no such folder"):
        parse_args(minimal_chat_argv(tmp_path, "--resume-from", str(tmp_path / "missing")))
    valid = str(tmp_path / "train.jsonl")
    with pytest.raises(UsageError, match="needs --eval-steps dividing it, got 4"):
        parse_args(
            minimal_chat_argv(
                tmp_path,
                *("--validation-file", valid, "--metric-for-best-model", "loss"),
                *("--save-steps", "6", "--eval-steps", "4"),
            )
        )
    assert (
        parse_args(
            minimal_chat_argv(
                tmp_path,
                *("--validation-file", valid, "--metric-for-best-model", "loss"),
                *("--save-steps", "8", "--eval-steps", "4"),
            )
        ).save_steps
        == 8
    )


def _settings(**values: object) -> dict[str, object]:
    from finetune.args import checkpoint_settings

    fields = {"metric_for_best_model": None, "save_total_limit": None, "eval_steps": None, "save_steps": None}
    fields.update(values)
    has_eval = bool(values.pop("has_eval", True))
    fields.pop("has_eval", None)
    return checkpoint_settings(SimpleNamespace(**fields), has_eval)  # type: ignore[arg-type]


def test_save_steps_saves_every_n_steps() -> None:
    assert _settings() == {}
    assert _settings(save_steps=5) == {"save_strategy": "steps", "save_steps": 5, "save_total_limit": None}
    assert _settings(save_steps=5, save_total_limit=2)["save_total_limit"] == 2
    # Choosing the best checkpoint evaluates at every checkpoint (or on --eval-steps, a divisor).
    best = _settings(save_steps=6, metric_for_best_model="loss")
    assert best["eval_strategy"] == "steps" and best["eval_steps"] == 6 and best["load_best_model_at_end"]
    assert _settings(save_steps=6, eval_steps=3, metric_for_best_model="loss")["eval_steps"] == 3
    # Without validation data there is nothing to choose by: checkpoints only.
    assert "eval_strategy" not in _settings(save_steps=6, metric_for_best_model="loss", has_eval=False)


# -- choosing the checkpoint -----------------------------------------------------------------------------


def _checkpoint(folder: Path, step: int, *, adapter: bool = True, state: bool = True) -> Path:
    import json

    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if adapter:
        (path / "adapter_model.safetensors").write_bytes(b"weights")
        (path / "adapter_config.json").write_text("{}")
    else:
        (path / "model.safetensors").write_bytes(b"weights")
    if state:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    return path


def _resume_args(tmp_path: Path, **values: object) -> SimpleNamespace:
    fields: dict[str, object] = {
        "checkpoint_dir": None,
        "resume_from": None,
        "deepspeed": None,
        "technique": "lora",
        "is_peft": True,
        "output_dir": tmp_path / "out",
    }
    fields.update(values)
    return SimpleNamespace(**fields)


def test_the_newest_complete_checkpoint_is_chosen(tmp_path: Path) -> None:
    from azft_contract.checkpoints import incomplete_reason, newest_complete

    own = tmp_path / "checkpoints"
    _checkpoint(own, 2)
    _checkpoint(own, 10)  # 10 > 4: by number, not by name
    _checkpoint(own, 4)
    _checkpoint(own, 12, state=False)  # the VM was taken while it was written
    (own / "checkpoint-14").mkdir()
    (own / "checkpoint-14" / "trainer_state.json").write_text('{"global_st')  # cut short
    (own / "runs").mkdir()
    skipped: list[tuple[str, str]] = []
    point = newest_complete(own, on_skip=lambda path, reason: skipped.append((path.name, reason)))
    assert point is not None and (point.step, point.path.name, point.adapter) == (10, "checkpoint-10", True)
    assert skipped == [
        ("checkpoint-14", "trainer_state.json is unreadable (JSONDecodeError)"),
        ("checkpoint-12", "no trainer_state.json (the save did not finish)"),
    ]
    # One checkpoint folder is its own answer; an empty or missing folder has none.
    assert newest_complete(own / "checkpoint-4").step == 4  # type: ignore[union-attr]
    assert newest_complete(tmp_path / "missing") is None
    wrong_state = _checkpoint(tmp_path / "other", 6)
    (wrong_state / "trainer_state.json").write_text('{"global_step": 5}')
    assert incomplete_reason(wrong_state) == "trainer_state.json is not that of step 6"
    no_weights = _checkpoint(tmp_path / "bare", 3)
    (no_weights / "adapter_model.safetensors").unlink()
    assert incomplete_reason(no_weights) == "no model or adapter weights"
    assert incomplete_reason(_checkpoint(tmp_path / "ds", 3), deepspeed=True) == (
        "no DeepSpeed engine state (global_step*)"
    )


def test_the_run_continues_from_the_checkpoint_furthest_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """finetune.checkpoints chooses between this job's own checkpoints and another run's, and says so."""
    from finetune.checkpoints import resume_point
    from finetune.errors import UsageError

    own, other = tmp_path / "own", tmp_path / "other"
    assert resume_point(_resume_args(tmp_path, checkpoint_dir=own)) is None  # a first attempt starts afresh
    _checkpoint(other, 4)
    with caplog.at_level("INFO", logger="finetune"):
        point = resume_point(_resume_args(tmp_path, checkpoint_dir=own, resume_from=other))  # type: ignore[arg-type]
    assert point is not None and point.path == other / "checkpoint-4"
    assert "resuming from checkpoint-4 (step 4)" in caplog.text
    # A restarted job has gone further than the job it resumed: its own checkpoint wins.
    _checkpoint(own, 6)
    _checkpoint(own, 8, state=False)
    with caplog.at_level("WARNING", logger="finetune"):
        point = resume_point(_resume_args(tmp_path, checkpoint_dir=own, resume_from=other))  # type: ignore[arg-type]
    assert point is not None and point.path == own / "checkpoint-6"
    assert "checkpoint-8: incomplete, no trainer_state.json" in caplog.text
    # Checkpoints written into --output-dir (no --checkpoint-dir) are not resumed by themselves.
    _checkpoint(tmp_path / "out", 8)
    assert resume_point(_resume_args(tmp_path)) is None  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="no complete checkpoint there"):
        resume_point(_resume_args(tmp_path, resume_from=tmp_path / "empty"))  # type: ignore[arg-type]
    full = tmp_path / "full"
    _checkpoint(full, 2, adapter=False)
    with pytest.raises(UsageError, match="holds a full model; --technique lora cannot resume it"):
        resume_point(_resume_args(tmp_path, resume_from=full))  # type: ignore[arg-type]


# -- a pre-empted job, restarted ---------------------------------------------------------------------------


def _steps(history: list[dict[str, object]]) -> dict[int, float]:
    return {int(h["step"]): float(h["loss"]) for h in history if "loss" in h}  # type: ignore[arg-type]


@pytest.mark.training
def test_a_restarted_job_continues_from_its_newest_complete_checkpoint(
    tiny_phi3: Path, chat_data: Path, tmp_path: Path, run_finetune: Runner
) -> None:
    import json
    import shutil

    def argv(name: str) -> list[str]:
        return contract_argv(
            task="chat-completion",
            model=tiny_phi3,
            train_file=chat_data,
            output_dir=tmp_path / name / "adapter",
            checkpoint_dir=tmp_path / name / "checkpoints",
            max_steps=8,
            save_steps=2,
            logging_steps=1,
        )

    whole = run_finetune(argv("whole"))
    assert whole.returncode == 0, whole.explain()
    saved = sorted(p.name for p in (tmp_path / "whole" / "checkpoints").glob("checkpoint-*"))
    assert saved == ["checkpoint-2", "checkpoint-4", "checkpoint-6", "checkpoint-8"]
    assert not list((tmp_path / "whole" / "adapter").glob("checkpoint-*"))  # the adapter output stays clean
    # What a pre-empted attempt leaves in the read-write output: checkpoint 4, and 6 cut off mid-save.
    left = tmp_path / "restarted" / "checkpoints"
    left.mkdir(parents=True)
    shutil.copytree(tmp_path / "whole" / "checkpoints" / "checkpoint-4", left / "checkpoint-4")
    shutil.copytree(tmp_path / "whole" / "checkpoints" / "checkpoint-6", left / "checkpoint-6")
    (left / "checkpoint-6" / "trainer_state.json").unlink()

    restarted = run_finetune(argv("restarted"))
    assert restarted.returncode == 0, restarted.explain()
    assert "resuming from checkpoint-4 (step 4)" in restarted.stderr
    assert "checkpoint-6: incomplete, no trainer_state.json" in restarted.stderr
    # The same run: it ends at the same step, its progress starts after the checkpoint, and its losses are
    # those of the uninterrupted run (the RNG and data order come back with the checkpoint).
    assert whole.done and restarted.done
    assert restarted.done["train_steps"] == whole.done["train_steps"] == 8
    assert restarted.done["resumed_from_step"] == 4
    assert [p["step"] for p in restarted.progress if "loss" in p] == [5, 6, 7, 8]
    metrics = json.loads((tmp_path / "restarted" / "adapter" / "metrics.json").read_text())
    before, after = _steps(whole.progress), _steps(metrics["loss_history"])
    assert sorted(after) == list(range(1, 9))  # the curve continues: steps 1-4 from the checkpoint's state
    assert after == pytest.approx(before, rel=1e-4)
    assert (tmp_path / "restarted" / "checkpoints" / "checkpoint-8" / "trainer_state.json").is_file()
