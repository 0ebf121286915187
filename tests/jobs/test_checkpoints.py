"""The entry point's checkpoints and resume (finetune.checkpoints): the flags, the choice of the newest complete
checkpoint, and the TrainingArguments that save them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest


def _argv(tmp_path: Path, *extra: str) -> list[str]:
    train = tmp_path / "train.jsonl"
    train.write_text(
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
    )
    return [
        "--task",
        "chat-completion",
        "--model",
        "m",
        "--train-file",
        str(train),
        "--output-dir",
        "out",
        *extra,
    ]


def test_the_checkpoint_flags_parse_and_are_checked(tmp_path: Path) -> None:
    from finetune.args import parse_args
    from finetune.errors import UsageError

    source = tmp_path / "earlier"
    source.mkdir()
    args = parse_args(
        _argv(tmp_path, "--save-steps", "5", "--checkpoint-dir", "ckpt", "--resume-from", str(source))
    )
    assert (args.save_steps, args.checkpoint_dir, args.resume_from) == (5, Path("ckpt"), source)
    plain = parse_args(_argv(tmp_path))
    assert (plain.save_steps, plain.checkpoint_dir, plain.resume_from) == (None, None, None)
    with pytest.raises(SystemExit):
        parse_args(_argv(tmp_path, "--save-steps", "0"))
    with pytest.raises(UsageError, match="--save-steps 9 is more than --max-steps 8"):
        parse_args(_argv(tmp_path, "--save-steps", "9", "--max-steps", "8"))
    with pytest.raises(UsageError, match=r"--resume-from .*: no such folder"):
        parse_args(_argv(tmp_path, "--resume-from", str(tmp_path / "missing")))
    valid = str(tmp_path / "train.jsonl")
    with pytest.raises(UsageError, match="needs --eval-steps dividing it, got 4"):
        parse_args(
            _argv(
                tmp_path,
                *("--validation-file", valid, "--metric-for-best-model", "loss"),
                *("--save-steps", "6", "--eval-steps", "4"),
            )
        )
    assert (
        parse_args(
            _argv(
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
