"""The entry point honours the spec's checkpoint fields (--metric-for-best-model, --save-total-limit) and
--max-seq-length auto, as the registry pipelines' inputs of the same names do."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.jobs.helpers import EntryPointRun, contract_argv, minimal_chat_argv

Runner = Callable[..., EntryPointRun]


def test_the_flags_parse_and_are_checked(tmp_path: Path) -> None:
    from finetune.args import parse_args
    from finetune.errors import UsageError

    valid = str(tmp_path / "train.jsonl")
    args = parse_args(
        minimal_chat_argv(
            tmp_path, "--validation-file", valid, "--metric-for-best-model", "loss", "--save-total-limit", "2"
        )
    )
    assert (args.metric_for_best_model, args.save_total_limit) == ("loss", 2)
    assert parse_args(minimal_chat_argv(tmp_path, "--max-seq-length", "auto")).max_seq_length is None
    assert (
        parse_args(minimal_chat_argv(tmp_path)).max_seq_length == 1024
        and parse_args(minimal_chat_argv(tmp_path)).save_total_limit is None
    )
    with pytest.raises(UsageError, match="needs --validation-file"):
        parse_args(minimal_chat_argv(tmp_path, "--metric-for-best-model", "loss"))
    with pytest.raises(UsageError, match="computes loss, mean_token_accuracy"):
        parse_args(
            minimal_chat_argv(tmp_path, "--validation-file", valid, "--metric-for-best-model", "f1_macro")
        )
    with pytest.raises(SystemExit):
        parse_args(minimal_chat_argv(tmp_path, "--save-total-limit", "0"))


def test_the_host_and_the_job_agree_on_the_metrics() -> None:
    from azft_contract import BEST_MODEL_METRICS as CONTRACT
    from finetune.args import BEST_MODEL_METRICS

    assert BEST_MODEL_METRICS is CONTRACT  # one table, shared by the job and the host's rules


def test_checkpoint_settings() -> None:
    from finetune.args import checkpoint_settings

    plain = SimpleNamespace(
        metric_for_best_model=None, save_total_limit=None, eval_steps=None, save_steps=None
    )
    assert checkpoint_settings(plain, True) == {}  # type: ignore[arg-type]
    best = SimpleNamespace(metric_for_best_model="loss", save_total_limit=2, eval_steps=None, save_steps=None)
    settings = checkpoint_settings(best, True)  # type: ignore[arg-type]
    assert settings["save_strategy"] == settings["eval_strategy"] == "epoch"
    assert settings["load_best_model_at_end"] is True and settings["metric_for_best_model"] == "loss"
    assert settings["save_total_limit"] == 2
    every = SimpleNamespace(metric_for_best_model=None, save_total_limit=-1, eval_steps=8, save_steps=None)
    assert checkpoint_settings(every, True) == {  # type: ignore[arg-type]
        "save_strategy": "steps",
        "save_steps": 8,
        "save_total_limit": None,  # -1: keep every checkpoint
    }


def test_auto_sequence_length_is_the_models_own(tmp_path: Path) -> None:
    from finetune.args import FALLBACK_MAX_SEQ_LENGTH, resolve_max_seq_length

    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 4096}))
    args = SimpleNamespace(max_seq_length=None)
    assert resolve_max_seq_length(args, tmp_path, SimpleNamespace(model_max_length=10**30)) == 4096  # type: ignore[arg-type]
    assert args.max_seq_length == 4096
    hub = SimpleNamespace(max_seq_length=None)
    assert resolve_max_seq_length(hub, None, SimpleNamespace(model_max_length=512)) == 512  # type: ignore[arg-type]
    unknown = SimpleNamespace(max_seq_length=None)
    assert (
        resolve_max_seq_length(unknown, None, SimpleNamespace(model_max_length=10**30))
        == FALLBACK_MAX_SEQ_LENGTH
    )  # type: ignore[arg-type]
    fixed = SimpleNamespace(max_seq_length=128)
    assert resolve_max_seq_length(fixed, tmp_path, None) == 128  # type: ignore[arg-type]


@pytest.mark.training
def test_the_best_checkpoint_is_kept(
    tiny_phi3: Path, chat_data: Path, tmp_path: Path, run_finetune: Runner
) -> None:
    out = tmp_path / "adapter"
    argv = contract_argv(
        task="chat-completion",
        model=tiny_phi3,
        train_file=chat_data,
        output_dir=out,
        validation_file=chat_data,
        eval_steps=4,
        max_steps=12,
        max_seq_length="auto",
        metric_for_best_model="loss",
        save_total_limit=1,
    )
    run = run_finetune(argv)
    assert run.returncode == 0, run.explain()
    state = json.loads(sorted(out.glob("checkpoint-*"))[-1].joinpath("trainer_state.json").read_text())
    assert state["best_metric"] is not None and state["best_model_checkpoint"]
    evals = [entry["eval_loss"] for entry in state["log_history"] if "eval_loss" in entry]
    assert state["best_metric"] == pytest.approx(min(evals))
    # At most the newest checkpoint and the best one are kept.
    assert 1 <= len(list(out.glob("checkpoint-*"))) <= 2
    assert (out / "adapter_model.safetensors").is_file()
